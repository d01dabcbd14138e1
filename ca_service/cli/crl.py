"""`ca-service` cRLs."""

from __future__ import annotations

from pathlib import Path

import click

from ca_service.cli.base import (
    main,
    services_of,
    settings_of,
)


@main.group()
def crl() -> None:
    """CRLs."""


@crl.command("publish")
@click.option("--force", is_flag=True, help="Regenerate even CRLs that are up to date.")
@click.pass_context
def crl_publish(ctx: click.Context, force: bool) -> None:
    """Regenerate due CRLs now (the service does it on its own; for cron or after a restore)."""
    services = services_of(settings_of(ctx))
    if services.revocation.publish_due(force=force):
        click.echo("another worker holds a CRL lease; it will publish", err=True)
    for h in services.revocation.health():
        click.echo(f"{h.issuer}\tnumber {h.number}\t{h.entries} entries\tnext update {h.next_update}")


@crl.command("root")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PEM file.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650))
@click.pass_context
def crl_root(ctx: click.Context, out: Path, days: int) -> None:
    """Write a CRL signed by the root (nginx checks a CRL for every CA in the chain)."""
    out.write_bytes(services_of(settings_of(ctx)).revocation.root_crl(days).pem)
    click.echo(f"root CRL written to {out}, valid {days} days; renew it before then", err=True)
