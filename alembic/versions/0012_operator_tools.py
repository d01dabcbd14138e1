"""operator tools: token and EAB key names reusable after revocation, EAB keys revocable,
issuance rate counters

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import ca_service.store.models

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint("uq_api_tokens_name", type_="unique")
        batch_op.create_index(
            "uq_api_tokens_active_name", ["name"], unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE
        )
    with op.batch_alter_table("acme_eab_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revoked_at", ca_service.store.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.drop_constraint("uq_acme_eab_keys_name", type_="unique")
        batch_op.create_index(
            "uq_acme_eab_keys_active_name", ["name"], unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE
        )
    op.create_table(
        "rate_counters",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("window_start", ca_service.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", ca_service.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", "window_start", name=op.f("pk_rate_counters")),
    )
    with op.batch_alter_table("rate_counters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rate_counters_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    """Back to unique names: fails while two tokens (or EAB keys) share a name."""
    with op.batch_alter_table("rate_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_counters_expires_at"))
    op.drop_table("rate_counters")
    with op.batch_alter_table("acme_eab_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_acme_eab_keys_active_name", sqlite_where=ACTIVE, postgresql_where=ACTIVE)
        batch_op.create_unique_constraint("uq_acme_eab_keys_name", ["name"])
        batch_op.drop_column("revoked_at")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index("uq_api_tokens_active_name", sqlite_where=ACTIVE, postgresql_where=ACTIVE)
        batch_op.create_unique_constraint("uq_api_tokens_name", ["name"])
