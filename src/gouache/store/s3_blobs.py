"""Content-addressed blobs in an S3-compatible bucket (``GOUACHE_BLOB_URL=s3://bucket/prefix``): AWS S3,
MinIO, Ceph RGW, R2... through boto3 (the optional extra ``gouache[s3]``).

Objects are named ``<prefix>/<key>`` with the key of `gouache.store.blobs` (the bytes' SHA-256 and an
extension), so the same bytes are one object. A PUT is atomic on S3 (an object appears whole or not at
all), and `put` skips the upload when the object already exists, so it is idempotent as the directory
store's is. The client is made once and shared by every thread (boto3 clients are thread-safe).

The store reads no environment itself: the endpoint, region and keys come from `Settings` (which also
reads the standard ``AWS_*`` names); when no keys are given, boto3's own chain (shared config files, an
instance role) finds them. `check()` is the start-up probe that turns a missing bucket, missing
credentials or an unreachable endpoint into one message naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gouache.store.blobs import check_key, make_key
from gouache.store.errors import BlobNotFound, BlobStoreUnavailable

#: Connections each store keeps to the endpoint (gateway threads, engine replicas' writers).
MAX_POOL_CONNECTIONS = 32


@dataclass(frozen=True)
class S3Config:
    """Where the bucket is and how to sign for it (None: boto3's default for that part)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


class S3BlobStore:
    """Blobs as objects ``<prefix>/<key>`` in one bucket."""

    def __init__(self, config: S3Config) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise BlobStoreUnavailable(
                f"GOUACHE_BLOB_URL {config.location} needs the S3 client: pip install 'gouache[s3]' ({exc})"
            ) from None
        self.config = config
        self.location = config.location
        self.bucket = config.bucket
        self._prefix = f"{config.prefix.strip('/')}/" if config.prefix.strip("/") else ""
        session = boto3.session.Session(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            aws_session_token=config.session_token,
            region_name=config.region,
        )
        options = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=MAX_POOL_CONNECTIONS,
            # S3-compatible servers (MinIO, a test's moto) answer on one host name: bucket in the path.
            s3={"addressing_style": "path"} if config.endpoint_url else None,
        )
        try:
            self._client: Any = session.client("s3", endpoint_url=config.endpoint_url, config=options)
        except ValueError as exc:  # botocore refuses a malformed endpoint URL here
            raise BlobStoreUnavailable(f"GOUACHE_S3_ENDPOINT_URL {config.endpoint_url!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"S3BlobStore({self.location!r})"

    def object_name(self, key: str) -> str:
        """The object that holds blob `key`."""
        return self._prefix + check_key(key)

    def put(self, data: bytes, ext: str) -> str:
        key = make_key(data, ext)
        if not self.exists(key):
            self._client.put_object(Bucket=self.bucket, Key=self.object_name(key), Body=data)
        return key

    def get(self, key: str) -> bytes:
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.object_name(key))
        except self._client.exceptions.NoSuchKey:
            raise BlobNotFound(f"no blob {key!r} in {self.location}") from None
        return bytes(answer["Body"].read())

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self.object_name(key))
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    def delete(self, key: str) -> bool:
        # S3's DELETE answers the same whether the object existed: ask first, for the return value.
        if not self.exists(key):
            return False
        self._client.delete_object(Bucket=self.bucket, Key=self.object_name(key))
        return True

    def close(self) -> None:
        self._client.close()

    def check(self) -> None:
        """Reach the bucket once (HEAD), or raise `BlobStoreUnavailable` naming the setting to fix."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        endpoint = self.config.endpoint_url or "AWS S3 (GOUACHE_S3_ENDPOINT_URL unset)"
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (NoCredentialsError, PartialCredentialsError):
            raise BlobStoreUnavailable(
                f"GOUACHE_BLOB_URL {self.location}: no S3 credentials; set GOUACHE_S3_ACCESS_KEY_ID and "
                "GOUACHE_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS "
                "profile)"
            ) from None
        except EndpointConnectionError:
            raise BlobStoreUnavailable(
                f"GOUACHE_S3_ENDPOINT_URL: cannot reach {endpoint} for GOUACHE_BLOB_URL {self.location}"
            ) from None
        except ClientError as exc:
            status = _status(exc)
            if status == 404:
                raise BlobStoreUnavailable(
                    f"GOUACHE_BLOB_URL {self.location}: no bucket {self.bucket!r} at {endpoint}; "
                    "create it first"
                ) from None
            if status in (401, 403):
                raise BlobStoreUnavailable(
                    f"GOUACHE_S3_ACCESS_KEY_ID / GOUACHE_S3_SECRET_ACCESS_KEY: {endpoint} refused them for "
                    f"bucket {self.bucket!r} ({status})"
                ) from None
            raise BlobStoreUnavailable(f"GOUACHE_BLOB_URL {self.location}: {exc}") from None
        except BotoCoreError as exc:  # e.g. a bucket name S3 does not allow
            raise BlobStoreUnavailable(f"GOUACHE_BLOB_URL {self.location}: {exc}") from None


def _status(exc: Any) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None
