"""Content provenance: the server's C2PA signing keys, and checking an image's provenance.

Keys. Unless settings name a certificate chain and key (`GOUACHE_C2PA_CERT`, `GOUACHE_C2PA_KEY`), the first
start creates a local root CA and a leaf signing certificate (ES256, EKU emailProtection, not a CA) under
``<data_dir>/provenance/``: the keys are written with mode 0600 and never logged. `GOUACHE_PROVENANCE=false`
turns signing off.

Checking answers OpenAI's ``content_provenance_check``: one ``c2pa`` result, ``detected`` with a validation
state (``trusted`` when signed by this server's CA, ``valid`` when the signature holds under another
issuer, ``invalid`` when the file was changed after signing) or ``not_detected`` / ``not_present`` when the
file carries no manifest (re-encoded, stripped)."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from gouache.engine.outputs.options import ProvenanceKeys
from gouache.engine.outputs.provenance import MIME
from gouache.service.errors import InvalidRequest

ISSUER = "Gouache local provenance CA"
_PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}


@dataclass(frozen=True)
class ProvenanceSetup:
    """The signing keys and the root the checker trusts."""

    keys: ProvenanceKeys
    trust_anchor: bytes


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    path.chmod(0o600)


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Gouache"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def create_keys(folder: Path) -> None:
    """A root CA (10 years) and a leaf signing certificate (5 years) in `folder`: ca.pem, ca.key, signer.pem
    (leaf then root), signer.key; keys mode 0600."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ISSUER))
        .issuer_name(_name(ISSUER))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Gouache image signer"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    _write_secret(folder / "ca.key", key_pem(ca_key))
    _write_secret(folder / "signer.key", key_pem(leaf_key))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "signer.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))


def load_provenance(data_dir: Path, cert: Path | None = None, key: Path | None = None) -> ProvenanceSetup:
    """The signing keys: the given certificate chain and key, or the local ones (created on first use)."""
    if cert is not None and key is not None:
        chain = cert.read_bytes()
        anchors = x509.load_pem_x509_certificates(chain)
        root = anchors[-1].public_bytes(serialization.Encoding.PEM)
        return ProvenanceSetup(ProvenanceKeys(chain, key.read_bytes()), root)
    folder = data_dir / "provenance"
    if not (folder / "signer.key").exists():
        create_keys(folder)
    return ProvenanceSetup(
        ProvenanceKeys((folder / "signer.pem").read_bytes(), (folder / "signer.key").read_bytes()),
        (folder / "ca.pem").read_bytes(),
    )


def _format_of(data: bytes) -> str:
    head = data[:512].lstrip()
    if head.startswith(b"<svg") or head.startswith(b"<?xml"):
        return "svg"
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = _PIL_FORMATS.get(im.format or "")
    except Exception as exc:
        raise InvalidRequest(
            "The file is not an image this check reads (PNG, JPEG, WebP, GIF or SVG).", param="file"
        ) from exc
    if fmt is None:
        raise InvalidRequest(
            "The file is not an image this check reads (PNG, JPEG, WebP, GIF or SVG).", param="file"
        )
    return fmt


def check(data: bytes, trust_anchor: bytes | None) -> dict[str, Any]:
    """OpenAI's `content_provenance_check` object for a file."""
    if not data:
        raise InvalidRequest("The file is empty.", param="file")
    return {
        "object": "content_provenance_check",
        "created_at": int(time.time()),
        "results": [c2pa_result(data, _format_of(data), trust_anchor)],
    }


def c2pa_result(data: bytes, fmt: str, trust_anchor: bytes | None) -> dict[str, Any]:
    import c2pa  # on first use, as for signing (gouache.engine.outputs.provenance)

    absent = {"type": "c2pa", "outcome": "not_detected", "validation_state": "not_present"}
    settings: dict[str, Any] = {"verify": {"verify_trust": True}}
    if trust_anchor is not None:
        settings["trust"] = {"user_anchors": trust_anchor.decode()}
    try:
        reader = c2pa.Reader(
            MIME[fmt], io.BytesIO(data), context=c2pa.Context(c2pa.Settings.from_dict(settings))
        )
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return absent
        return {"type": "c2pa", "outcome": "detected", "validation_state": "invalid"}
    try:
        store = json.loads(reader.json())
        state = str(reader.get_validation_state() or "").lower()
    finally:
        reader.close()
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    result: dict[str, Any] = {
        "type": "c2pa",
        "outcome": "detected",
        "validation_state": state if state in ("trusted", "valid") else "invalid",
    }
    issuer = (active.get("signature_info") or {}).get("issuer")
    if issuer:
        result["issuer"] = issuer
    for assertion in active.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                agent = action.get("softwareAgent")
                name = agent.get("name") if isinstance(agent, dict) else agent
                if name and "model" not in result:
                    result["model"] = str(name).split("/", 1)[-1]
                if action.get("when") and "generated_at" not in result:
                    result["generated_at"] = action["when"]
    return result
