"""`ca-service` offline issuance and revocation through the API code paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ca_service.cli.base import (
    OUT_FILE,
    actor,
    main,
    services_of,
    settings_of,
    write_out,
)


@main.command()
@click.option(
    "--csr", "csr_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--out", required=True, type=OUT_FILE, help="Certificate file (PEM; '-': stdout).")
@click.option(
    "--chain-out", type=OUT_FILE, default=None, help="Also write the issuing chain here ('-': stdout)."
)
@click.option("--profile", default=None, help="Certificate profile (default: the default_profile setting).")
@click.pass_context
def issue(ctx: click.Context, csr_file: Path, out: Path, chain_out: Path | None, profile: str | None) -> None:
    """Issue a certificate from a CSR (PEM or DER) offline, through the same code path as the
    API: the same policy, profile, rate limits and audit entry."""
    settings = settings_of(ctx)
    cert = services_of(settings).enrollment.issue(csr_file.read_bytes(), actor(), profile)
    write_out(out, cert.certificate_pem)
    if chain_out:
        write_out(chain_out, cert.chain_pem)
    click.echo(f"issued {cert.serial} for {cert.mac}, valid until {cert.not_after:%Y-%m-%d}", err=True)


@main.command()
@click.argument("serial")
@click.option(
    "--reason",
    required=True,
    help="RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded, "
    "cessationOfOperation, privilegeWithdrawn.",
)
@click.option("--invalidity-date", type=click.DateTime(), default=None, help="UTC, e.g. 2026-11-01T00:00:00.")
@click.option("--publish", is_flag=True, help="Regenerate the CRL now instead of leaving it to the service.")
@click.pass_context
def revoke(ctx: click.Context, serial: str, reason: str, invalidity_date: Any, publish: bool) -> None:
    """Revoke a certificate by serial (hex, as openssl prints it), through the API's code path."""
    from datetime import UTC

    services = services_of(settings_of(ctx))
    principal = actor()
    when = invalidity_date.replace(tzinfo=UTC) if invalidity_date else None
    done = services.revocation.revoke(serial, reason, when, principal, via="cli")
    click.echo(f"revoked {done.serial} ({done.mac}) for {done.reason}", err=True)
    if publish:
        services.revocation.publish_due()
        click.echo("CRL regenerated", err=True)
