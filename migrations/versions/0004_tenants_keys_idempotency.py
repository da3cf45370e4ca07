"""tenants and their API keys; idempotent job submission

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows from before tenants belong to the admin, whose token a local user already has.
FIRST_TENANT = "admin"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_keys_digest")),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])
    for table in ("jobs", "datasets", "checkpoints"):
        # The default fills existing rows, then goes: every new row names its tenant.
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "tenant", sa.String(length=64), nullable=False, server_default=FIRST_TENANT
                )
            )
        with op.batch_alter_table(table) as batch:
            batch.alter_column("tenant", server_default=None)
    op.create_index("ix_datasets_tenant", "datasets", ["tenant"])
    op.create_index("ix_checkpoints_tenant", "checkpoints", ["tenant"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("request_sha256", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_jobs_tenant", ["tenant", "idempotency_key"])
        batch.create_index("ix_jobs_tenant_status", ["tenant", "status"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_tenant_status")
        batch.drop_constraint("uq_jobs_tenant", type_="unique")
        batch.drop_column("request_sha256")
        batch.drop_column("idempotency_key")
    op.drop_index("ix_checkpoints_tenant", table_name="checkpoints")
    op.drop_index("ix_datasets_tenant", table_name="datasets")
    for table in ("jobs", "datasets", "checkpoints"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tenant")
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
