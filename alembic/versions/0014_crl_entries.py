"""certificates.crl_entry: each revoked certificate's CRL entry as DER, so that a CRL is
assembled from stored bytes; a covering index over the entries and one over those not yet
encoded (existing revoked rows start there: the CRL publisher encodes them in bulk once)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 01:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

REVOKED = sa.text("status = 'revoked'")
UNENCODED = sa.text("status = 'revoked' AND crl_entry IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("crl_entry", sa.LargeBinary(), nullable=True))
        batch_op.create_index(
            "ix_certificates_crl_entries",
            ["issuer_id", "status", "not_after", "crl_entry"],
            unique=False,
            sqlite_where=REVOKED,
            postgresql_where=REVOKED,
        )
        batch_op.create_index(
            "ix_certificates_crl_unencoded",
            ["issuer_id"],
            unique=False,
            sqlite_where=UNENCODED,
            postgresql_where=UNENCODED,
        )


def downgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_certificates_crl_unencoded", sqlite_where=UNENCODED, postgresql_where=UNENCODED
        )
        batch_op.drop_index("ix_certificates_crl_entries", sqlite_where=REVOKED, postgresql_where=REVOKED)
        batch_op.drop_column("crl_entry")
