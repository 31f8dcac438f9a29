"""Opening the configured store without building the engine (no torch import), for CLI commands."""

from __future__ import annotations

from gouache.settings import Settings
from gouache.store import BlobStore, DirectoryBlobStore, Store
from gouache.store.errors import BlobStoreUnavailable


def open_blob_store(settings: Settings, check: bool = False) -> BlobStore:
    """The blob store GOUACHE_BLOB_URL names: a directory (the default: data_dir/blobs) or an S3-compatible
    bucket. `check=True` reaches the bucket once, so that a missing bucket, missing credentials or an
    unreachable endpoint fail at start-up (`BlobStoreUnavailable`, naming the setting), not on a request."""
    try:
        bucket = settings.blob_bucket
    except ValueError as exc:
        raise BlobStoreUnavailable(str(exc)) from None
    if bucket is None:
        return DirectoryBlobStore(settings.blob_dir)
    from gouache.store.s3_blobs import S3BlobStore, S3Config

    name, prefix = bucket
    secret, token = settings.s3_secret_access_key, settings.s3_session_token
    store = S3BlobStore(
        S3Config(
            bucket=name,
            prefix=prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            session_token=token.get_secret_value() if token is not None else None,
        )
    )
    if check:
        try:
            store.check()
        except BaseException:
            store.close()
            raise
    return store


def open_store(settings: Settings, migrate: bool = True) -> Store:
    """The store, migrated. `migrate=False` (a Ray gateway replica: the launcher migrated once) only checks
    that the schema is current, and fails naming the fix if not."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url, open_blob_store(settings))
    if migrate:
        store.migrate()
    elif not store.schema_is_current():
        store.close()
        raise RuntimeError(
            "The database schema is not current; the launcher (`gouache serve --ray`) migrates it before "
            "the replicas start."
        )
    return store
