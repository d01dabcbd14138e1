"""`ca-service` aPI tokens."""

from __future__ import annotations

import click

from ca_service.cli.base import (
    main,
    services_of,
    settings_of,
)


@main.group()
def token() -> None:
    """API tokens (shown once, stored hashed)."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice(["admin", "provisioner", "auditor"]))
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="MAC prefix a provisioner may act on (repeatable).")
@click.pass_context
def token_create(ctx: click.Context, role: str, name: str, scopes: tuple[str, ...]) -> None:
    """Create a token and print it (only the token, on stdout)."""
    from ca_service.enrollment.tokens import create_token

    click.echo(create_token(services_of(settings_of(ctx)).db, name=name, role=role, scopes=scopes))


@token.command("list")
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """List tokens (names, roles, scopes; never the tokens)."""
    from ca_service.enrollment.tokens import list_tokens

    for t in list_tokens(services_of(settings_of(ctx)).db):
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
        click.echo(f"{t.name}\t{t.role}\t{','.join(t.scopes) or '-'}\t{state}")


@token.command("revoke")
@click.argument("name")
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token by name."""
    from ca_service.enrollment.tokens import revoke_token

    revoke_token(services_of(settings_of(ctx)).db, name)
    click.echo(f"token {name} revoked", err=True)
