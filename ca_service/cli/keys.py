"""`ca-service keys`: the CA keys and secrets at rest."""

from __future__ import annotations

import click

from ca_service.cli.base import main, services_of, settings_of


@main.group()
def keys() -> None:
    """CA keys and the secrets the service keeps sealed."""


@keys.command("reseal")
@click.pass_context
def keys_reseal(ctx: click.Context) -> None:
    """Seal CA key files again with scrypt at the current cost (files of earlier versions use
    PBKDF2) and EAB keys bound to their kid; the keys themselves and the passphrase do not
    change. Idempotent."""
    from ca_service.issuers import lifecycle

    settings = settings_of(ctx)
    services = services_of(settings)
    for name in lifecycle.reseal_keys(services.db, settings):
        click.echo(f"key of {name} sealed again with scrypt", err=True)
    eab = services.acme.reseal_eab_keys()
    click.echo(f"{eab} EAB key(s) sealed again, bound to their kid", err=True)
