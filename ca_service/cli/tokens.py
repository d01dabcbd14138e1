"""`ca-service` API tokens."""

from __future__ import annotations

import dataclasses

import click

from ca_service.cli.base import (
    json_option,
    main,
    services_of,
    settings_of,
    show,
)


@main.group()
def token() -> None:
    """API tokens (shown once, stored hashed)."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice(["admin", "provisioner", "auditor"]))
@click.option("--name", required=True)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="MAC prefix a provisioner may act on (repeatable; provisioners only).",
)
@click.pass_context
def token_create(ctx: click.Context, role: str, name: str, scopes: tuple[str, ...]) -> None:
    """Create a token and print it (only the token, on stdout). It is shown once and stored
    only as a hash. A name is unique among active tokens; a revoked token's name may be used
    again."""
    from ca_service.enrollment.tokens import create_token

    click.echo(create_token(services_of(settings_of(ctx)).db, name=name, role=role, scopes=scopes))


@token.command("list")
@json_option
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens: name, role, scopes, state, created, revoked (never the tokens)."""
    from ca_service.enrollment.tokens import list_tokens

    rows = [
        {**dataclasses.asdict(t), "state": "revoked" if t.revoked_at else "active"}
        for t in list_tokens(services_of(settings_of(ctx)).db)
    ]
    show(rows, ("name", "role", "scopes", "state", "created_at", "revoked_at"), as_json)


@token.command("revoke")
@click.argument("name")
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke the active token named NAME (its name may then be used again)."""
    from ca_service.enrollment.tokens import revoke_token

    revoke_token(services_of(settings_of(ctx)).db, name)
    click.echo(f"token {name} revoked", err=True)
