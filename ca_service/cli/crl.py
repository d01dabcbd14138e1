"""`ca-service` cRLs."""

from __future__ import annotations

from pathlib import Path

import click

from ca_service.cli.base import (
    OUT_FILE,
    json_option,
    main,
    services_of,
    settings_of,
    show,
    write_out,
)


@main.group()
def crl() -> None:
    """CRLs."""


@crl.command("publish")
@click.option("--force", is_flag=True, help="Regenerate even CRLs that are up to date.")
@json_option
@click.pass_context
def crl_publish(ctx: click.Context, force: bool, as_json: bool) -> None:
    """Regenerate due CRLs now (the service does it on its own; for cron or after a restore),
    then list each issuer's CRL: number, entries, next update."""
    services = services_of(settings_of(ctx))
    if services.revocation.publish_due(force=force):
        click.echo("another worker holds a CRL lease; it will publish", err=True)
    rows = [
        {"issuer": h.issuer, "number": h.number, "entries": h.entries, "next_update": h.next_update}
        for h in services.revocation.health()
    ]
    show(rows, ("issuer", "number", "entries", "next_update"), as_json)


@crl.command("root")
@click.option("--out", required=True, type=OUT_FILE, help="PEM file ('-': stdout).")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650))
@click.pass_context
def crl_root(ctx: click.Context, out: Path, days: int) -> None:
    """Write a CRL signed by the root (nginx checks a CRL for every CA in the chain)."""
    pem = services_of(settings_of(ctx)).revocation.root_crl(days).pem
    if write_out(out, pem.decode()):
        click.echo(f"root CRL written to {out}, valid {days} days; renew it before then", err=True)
