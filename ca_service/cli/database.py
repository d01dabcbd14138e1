"""`ca-service` database schema (Alembic migrations)."""

from __future__ import annotations

import click

from ca_service.cli.base import (
    main,
    settings_of,
    upgrade_schema,
)


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Upgrade the database schema to the newest revision."""
    upgrade_schema(settings_of(ctx, "create"))
    click.echo("database is at the newest schema revision", err=True)
