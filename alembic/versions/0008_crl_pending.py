"""Revocations waiting for their CRL as rows of their own (crl_pending): revoking transactions
no longer update the per-issuer crls row, whose revision counters go away

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:40:00
"""

import sqlalchemy as sa
from alembic import op

import ca_service.store.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crl_pending",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=42), nullable=False),
        sa.Column("revoked_at", ca_service.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"], name=op.f("fk_crl_pending_issuer_id_issuers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crl_pending")),
    )
    with op.batch_alter_table("crl_pending", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crl_pending_issuer_id"), ["issuer_id"], unique=False)
    # a CRL that missed revocations under the old counters is rebuilt at once: one pending row
    op.execute(
        "INSERT INTO crl_pending (issuer_id, serial, revoked_at) "
        "SELECT issuer_id, '', CURRENT_TIMESTAMP FROM crls WHERE built_revision < revision"
    )
    with op.batch_alter_table("crls", schema=None) as batch_op:
        batch_op.drop_column("revision")
        batch_op.drop_column("built_revision")


def downgrade() -> None:
    with op.batch_alter_table("crls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("built_revision", sa.BigInteger(), nullable=False, server_default="-1"))
        batch_op.add_column(sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("crl_pending", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crl_pending_issuer_id"))
    op.drop_table("crl_pending")
