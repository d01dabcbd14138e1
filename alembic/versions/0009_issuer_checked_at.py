"""issuers.checked_at: the last successful 'ca-service issuer check' (workers then offer
credentials again that a key store had refused)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:10:00
"""

import sqlalchemy as sa
from alembic import op

import ca_service.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issuers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("checked_at", ca_service.store.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("issuers", schema=None) as batch_op:
        batch_op.drop_column("checked_at")
