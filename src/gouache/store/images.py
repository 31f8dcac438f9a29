"""Image rows and their bytes: a row per produced image, the bytes in the content-addressed `BlobStore`.

An image belongs to its request, so its owner is the request's API key.
"""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError

from gouache.store.database import Database
from gouache.store.errors import RecordNotFound, StoreError
from gouache.store.models import ImageRecord, RequestRecord, utcnow
from gouache.store.owners import ALL_OWNERS, Owner, owns
from gouache.store.values import check_seed, is_id
from gouache.store.views import ImageView


def new_image_id() -> str:
    return "img_" + secrets.token_hex(12)


class ImageRepository(Database):
    """Adding an image to a request, and reading it back (row and bytes)."""

    def add_image(
        self,
        request_id: str,
        index: int,
        data: bytes,
        fmt: str,
        width: int,
        height: int,
        seed: int | None,
    ) -> str:
        """Store the image bytes as a blob, then its row; returns the image id.

        The blob is written before (and outside) the database transaction so the SQLite write lock is not
        held during file I/O. If the row cannot be written the blob may stay behind unreferenced, which is
        harmless: blobs are content-addressed and shared.
        """
        check_seed(seed)
        fmt = fmt.lower()
        with self._read_sessions() as session:
            if session.get(RequestRecord, request_id) is None:
                raise RecordNotFound(f"no request {request_id!r}")
        blob_key = self.blobs.put(data, fmt)
        image_id = new_image_id()
        try:
            with self._write() as session:
                session.add(
                    ImageRecord(
                        id=image_id,
                        request_id=request_id,
                        index=index,
                        blob_key=blob_key,
                        format=fmt,
                        width=width,
                        height=height,
                        seed=seed,
                        byte_size=len(data),
                        created_at=utcnow(),
                    )
                )
        except IntegrityError as exc:
            with self._read_sessions() as session:
                if session.get(RequestRecord, request_id) is None:
                    raise RecordNotFound(f"no request {request_id!r}") from exc
            raise StoreError(f"request {request_id!r} already has an image with index {index}") from exc
        return image_id

    def get_image(self, image_id: str, owner: Owner = ALL_OWNERS) -> ImageView | None:
        """An image row, or None if there is none or its request belongs to another owner."""
        if not is_id(image_id):
            return None
        with self._read_sessions() as session:
            record = session.get(ImageRecord, image_id)
            if record is None or not owns(record.request.api_key_id, owner):
                return None
            return ImageView.from_record(record)

    def read_image_bytes(self, image_id: str, owner: Owner = ALL_OWNERS) -> bytes:
        """The encoded image; raises `RecordNotFound` (no such image) or `BlobNotFound` (file missing)."""
        image = self.get_image(image_id, owner)
        if image is None:
            raise RecordNotFound(f"no image {image_id!r}")
        return self.blobs.get(image.blob_key)
