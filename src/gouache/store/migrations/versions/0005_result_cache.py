"""Result cache key on request records: an identical request with an explicit seed is served from the store.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("cache_key", sa.String(64), nullable=True))
    op.create_index("ix_requests_cache_key", "requests", ["cache_key"])


def downgrade() -> None:
    op.drop_index("ix_requests_cache_key", table_name="requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("cache_key")
