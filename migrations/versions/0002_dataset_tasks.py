"""datasets: classification or regression

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(
            sa.Column("task", sa.String(length=16), nullable=False, server_default="classification")
        )
        batch.add_column(sa.Column("targets", sa.Integer(), nullable=True))
        batch.alter_column("classes", existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("task", server_default=None)


def downgrade() -> None:
    # The old schema cannot describe regression datasets: they go, with their jobs.
    regression = "SELECT id FROM datasets WHERE task <> 'classification'"
    op.execute(f"DELETE FROM jobs WHERE dataset_id IN ({regression})")
    op.execute(f"DELETE FROM datasets WHERE id IN ({regression})")
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("classes", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("targets")
        batch.drop_column("task")
