"""Image references of JSON edits (`ImageRefParam`: one of `file_id` or `image_url`) turned into bytes.

`file_id` names a Files API upload of the caller's (or an image id it produced); `image_url` is a data URL,
or an http(s) URL that is fetched only when GOUACHE_REMOTE_IMAGE_URLS allows it: at most
`remote_image_max_mb`, within `remote_image_timeout_s`, following at most a few redirects and none that leads
to a private, loopback or link-local address (a redirect is how a public URL reaches inside a network)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from gouache.service.errors import InvalidRequest
from gouache.service.turn_input import input_image, verified_image
from gouache.store import Owner, Store

_MAX_REDIRECTS = 3


@dataclass(frozen=True)
class RemoteImagePolicy:
    allowed: bool = False
    max_bytes: int = 20 * 2**20
    timeout_s: float = 10.0


class ImageRefResolver:
    def __init__(self, store: Store, remote: RemoteImagePolicy) -> None:
        self.store = store
        self.remote = remote

    def resolve(self, ref: dict[str, Any], where: str, owner: Owner) -> bytes:
        """The bytes of one reference, or a 400 naming `where` (e.g. `images[1].image_url`). Blocking."""
        file_id, url = ref.get("file_id"), ref.get("image_url")
        if (file_id is None) == (url is None):
            raise InvalidRequest(
                "An image reference takes exactly one of 'file_id' or 'image_url'.",
                param=where,
                code="invalid_image_reference",
            )
        if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            return self._fetch(url, f"{where}.image_url")
        return input_image(ref, where, self.store, owner)

    def _fetch(self, url: str, param: str) -> bytes:
        if not self.remote.allowed:
            raise InvalidRequest(
                "Remote image URLs are not fetched by this server (GOUACHE_REMOTE_IMAGE_URLS is off): send "
                "the image as a data URL or upload it to /v1/files and pass its file_id.",
                param=param,
                code="invalid_image_url",
            )
        try:
            data = self._get(url, param)
        except httpx.HTTPError as exc:
            raise InvalidRequest(
                f"Could not fetch the image: {exc}", param=param, code="invalid_image_url"
            ) from exc
        return verified_image(data, "The URL did not return an image.", param, "invalid_image")

    def _get(self, url: str, param: str) -> bytes:
        with httpx.Client(timeout=self.remote.timeout_s, follow_redirects=False) as client:
            for hop in range(_MAX_REDIRECTS + 1):
                if hop > 0:
                    _refuse_private(url, param)
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        if not url.lower().startswith(("http://", "https://")):
                            break
                        continue
                    if response.status_code != 200:
                        raise InvalidRequest(
                            f"Fetching the image answered HTTP {response.status_code}.",
                            param=param,
                            code="invalid_image_url",
                        )
                    data = bytearray()
                    for chunk in response.iter_bytes():
                        data += chunk
                        if len(data) > self.remote.max_bytes:
                            raise InvalidRequest(
                                f"The remote image is larger than {self.remote.max_bytes} bytes.",
                                param=param,
                                code="image_file_too_large",
                            )
                    return bytes(data)
        raise InvalidRequest("The image URL redirects too often.", param=param, code="invalid_image_url")


def _refuse_private(url: str, param: str) -> None:
    """A redirect may not lead to this machine or a private network."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise InvalidRequest(f"Cannot resolve {host!r}.", param=param, code="invalid_image_url") from exc
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%")[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified:
            raise InvalidRequest(
                f"The image URL redirects to a private or loopback address ({host}); refused.",
                param=param,
                code="invalid_image_url",
            )
