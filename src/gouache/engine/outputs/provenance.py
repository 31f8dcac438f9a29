"""C2PA provenance: the finishing pipeline's last step signs a manifest into the file.

Offline (no timestamp authority): the claim is signed with the server's own leaf certificate, issued by a
local CA (:mod:`gouache.service.provenance` creates both on first start). Text-to-image records
``c2pa.created`` with ``digitalSourceType`` trainedAlgorithmicMedia and the model as software agent; an edit
records its input as the parent ingredient with ``c2pa.opened`` + ``c2pa.edited``
(compositeWithTrainedAlgorithmicMedia). Nothing may re-encode the bytes afterwards: Pillow drops the
manifest.

``c2pa`` (its Rust library, ~12 MB resident) is imported on the first signing, not with the finishing
pipeline: a server with provenance off never loads it; one with it on signs during its warm-up."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from gouache.engine.outputs.options import ProvenanceKeys

if TYPE_CHECKING:
    import c2pa

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"
COMPOSITE = IPTC + "compositeWithTrainedAlgorithmicMedia"
MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}
#: The manifest without a thumbnail (about 3 KB instead of 10-47 KB).
_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _context() -> c2pa.Context:
    import c2pa

    return c2pa.Context(c2pa.Settings.from_dict(_SETTINGS))


def _signer(keys: ProvenanceKeys) -> c2pa.Signer:
    import c2pa

    info = c2pa.C2paSignerInfo(
        alg=b"es256", sign_cert=keys.cert_chain, private_key=keys.private_key, ta_url=None
    )
    return c2pa.Signer.from_info(info)


def manifest(model: str, parent: bool) -> dict[str, object]:
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    agent = {"name": f"Gouache/{model}"}
    if parent:
        actions = [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}, "when": when},
            {"action": "c2pa.edited", "softwareAgent": agent, "digitalSourceType": COMPOSITE, "when": when},
        ]
    else:
        actions = [
            {"action": "c2pa.created", "softwareAgent": agent, "digitalSourceType": TRAINED, "when": when}
        ]
    return {
        "claim_generator_info": [{"name": "Gouache", "version": _version()}],
        "title": f"Gouache image ({model})",
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
    }


def sign(
    data: bytes, fmt: str, keys: ProvenanceKeys, model: str, parent: tuple[bytes, str] | None = None
) -> bytes:
    """`data` (a finished file of format `fmt`) with a signed C2PA manifest; `parent` (bytes, format) is an
    edit's input, recorded as the parent ingredient."""
    import c2pa

    builder = c2pa.Builder(json.dumps(manifest(model, parent is not None)), _context())
    try:
        if parent is not None:
            pdata, pfmt = parent
            ingredient = {"title": f"input.{pfmt}", "relationship": "parentOf", "label": "parent"}
            builder.add_ingredient(json.dumps(ingredient), MIME[pfmt], io.BytesIO(pdata))
        dest = io.BytesIO()
        with _lock:  # one signer at a time: the native signer is not shared across threads
            signer = _signer(keys)
            try:
                builder.sign(signer, MIME[fmt], io.BytesIO(data), dest)
            finally:
                signer.close()
        return dest.getvalue()
    finally:
        builder.close()


@lru_cache(maxsize=1)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gouache")
    except PackageNotFoundError:
        return "0"
