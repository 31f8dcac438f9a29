"""Usage ledger columns on requests, API keys, and the key that owns each response.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("size", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("quality", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("image_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("local_cost_usd", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("wall_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("cpu_s", sa.Float(), nullable=True))
        batch.create_index("ix_requests_api_key_id_created_at", ["api_key_id", "created_at"], unique=False)
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(length=32), nullable=True))
        batch.create_index("ix_responses_api_key_id", ["api_key_id"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("redacted", sa.String(length=32), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("budget_images", sa.Integer(), nullable=True),
        sa.Column("rate_limit_requests", sa.Integer(), nullable=True),
        sa.Column("rate_limit_images", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    with op.batch_alter_table("responses") as batch:
        batch.drop_index("ix_responses_api_key_id")
        batch.drop_column("api_key_id")
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_api_key_id_created_at")
        for column in ("cpu_s", "wall_s", "local_cost_usd", "cost_usd", "image_count", "quality", "size"):
            batch.drop_column(column)
        batch.drop_column("api_key_id")
