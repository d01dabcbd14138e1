"""ACME nonces without a write at issue: an HMAC key shared by all workers; acme_nonces now
records redeemed nonces only (RFC 8555 section 6.5)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:30:00
"""

import sqlalchemy as sa
from alembic import op

import ca_service.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acme_nonce_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", ca_service.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acme_nonce_keys")),
    )
    # rows of the old scheme were issued-but-unused nonces; now the table holds redemptions
    op.execute("DELETE FROM acme_nonces")


def downgrade() -> None:
    op.drop_table("acme_nonce_keys")
    op.execute("DELETE FROM acme_nonces")
