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
@click.pass_context
def crl_root(ctx: click.Context, out: Path) -> None:
    """Write the root CRL as published at /crl/<root>.crl (regenerated first when due, if the
    root key is here): for relying parties that load CRLs from files (nginx ssl_crl)."""
    services = services_of(settings_of(ctx))
    services.revocation.publish_due()
    published, pem = services.revocation.stored_pem(services.directory.get().root.name)
    if write_out(out, pem.decode()):
        click.echo(
            f"root CRL {published.number} written to {out}; next update "
            f"{published.next_update:%Y-%m-%dT%H:%M:%SZ}",
            err=True,
        )


@crl.command("import")
@click.argument("crl_file", metavar="ROOT.CRL", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def crl_import(ctx: click.Context, crl_file: Path) -> None:
    """Publish a CRL signed by the external (offline) root, PEM or DER: checked against the
    root's key, refused when its CRL number is not above the published one or it names another
    issuer. Issuing CAs of ours that it lists are revoked."""
    published = services_of(settings_of(ctx)).revocation.import_crl(crl_file.read_bytes())
    click.echo(
        f"root CRL {published.number} of {published.issuer} is published; next update "
        f"{published.next_update:%Y-%m-%dT%H:%M:%SZ}: import the next one before then",
        err=True,
    )
