"""Download URLs a GET can show again: each token is also kept sealed under the wrapping key
(bound to its credential, kind and hash), so the provisioning GETs return the pending delivery's
URLs instead of minting new ones (issue 13). Tokens made before have none: a POST renews them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("download_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("download_tokens", schema=None) as batch_op:
        batch_op.drop_column("sealed")
