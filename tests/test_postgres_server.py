"""The live server on a real PostgreSQL database (GOUACHE_DATABASE_URL), not only SQLite."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from openai import OpenAI
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from gouache.store import Store
from tests.live import start_server


def test_server_records_into_postgres(postgres_url: str, tmp_path: Path) -> None:
    database = f"gouache_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    url = make_url(postgres_url).set(database=database).render_as_string(hide_password=False)
    server = start_server(tmp_path / "data", {"GOUACHE_DATABASE_URL": url})
    try:
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)
        raw = client.images.with_raw_response.generate(
            model="gpt-image-2",
            prompt="on postgres",
            size="1024x1024",
            quality="low",
            extra_body={"seed": 11},
        )
        image = raw.parse().data[0].b64_json or ""
        request_id = raw.headers["x-gouache-request-id"]
    finally:
        server.stop()
    assert not (tmp_path / "data" / "gouache.db").exists()
    store = Store(url, tmp_path / "data" / "blobs")
    try:
        record = store.get_request(request_id)
        assert record is not None and record.status == "succeeded" and record.seed == 11
        assert store.read_image_bytes(record.images[0].id) == base64.b64decode(image)
    finally:
        store.close()
        admin.dispose()
