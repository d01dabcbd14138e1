"""`ca-service` aCME external account binding keys."""

from __future__ import annotations

import json

import click

from ca_service.cli.base import (
    main,
    services_of,
    settings_of,
)


@main.group()
def eab() -> None:
    """ACME external account binding keys (RFC 8555 section 7.3.4)."""


@eab.command("create")
@click.option("--name", required=True, help="Who the key is for, e.g. the provisioning platform.")
@click.option("--scope", "scopes", required=True, multiple=True, help="MAC prefix (repeatable), e.g. 7C2F80.")
@click.option("--json", "as_json", is_flag=True, help='Print {"kid": ..., "hmac_key": ...}.')
@click.pass_context
def eab_create(ctx: click.Context, name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create an EAB key and print its kid and HMAC key (shown once; binds one ACME account)."""
    kid, hmac_key = services_of(settings_of(ctx)).acme.create_eab(name, scopes)
    if as_json:
        click.echo(json.dumps({"kid": kid, "hmac_key": hmac_key}))
    else:
        click.echo(f"kid:      {kid}\nhmac_key: {hmac_key}")
