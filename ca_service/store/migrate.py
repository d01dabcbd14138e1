"""Running Alembic migrations programmatically (the schema changes only through alembic/)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command
from ca_service.store.db import exclusive

# alembic/ stays at the top of the repository; ca_service/migrations is a link to it, and the wheel
# carries its files under that name (package data), so the same path holds in the source tree,
# in an editable install and in site-packages.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Upgrade the schema; two processes or hosts starting at once take turns (the second finds
    the schema current)."""
    with exclusive(url, "schema"):
        command.upgrade(alembic_config(url), revision)
