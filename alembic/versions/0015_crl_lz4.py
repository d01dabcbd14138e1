"""crl_data.der compressed with lz4 on PostgreSQL (RFC 5280 CRLs of a million entries are ~53 MB):
the default pglz took ~1.4 s to store one such CRL, lz4 ~0.6 s for about the same size. A
server built without lz4 keeps pglz; SQLite stores the bytes as they are.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 08:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FEATURE_NOT_SUPPORTED = "0A000"  # "compression method lz4 not supported" (a server built without it)


def _compression(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():  # a savepoint: a server without lz4 refuses the method
            bind.execute(sa.text(f"ALTER TABLE crl_data ALTER COLUMN der SET COMPRESSION {method}"))
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != FEATURE_NOT_SUPPORTED:
            raise


def upgrade() -> None:
    _compression("lz4")


def downgrade() -> None:
    _compression("pglz")
