"""`ca-service` renewals: the report, superseded revocation and the cron renewal client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ca_service.cli.base import (
    main,
    services_of,
    settings_of,
)


@main.group()
def renewals() -> None:
    """Certificate renewals (RFC 9773 windows, lineage)."""


@renewals.command("due")
@click.option("--days", type=int, default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def renewals_due(ctx: click.Context, days: int, as_json: bool) -> None:
    """Valid certificates expiring within --days that have no successor."""
    due, _ = services_of(settings_of(ctx)).renewals.due(days)
    if as_json:
        rows = [{"serial": d.serial, "mac": d.mac, "not_after": d.not_after.isoformat()} for d in due]
        click.echo(json.dumps(rows))
        return
    for d in due:
        click.echo(f"{d.mac}\t{d.serial}\t{d.not_after:%Y-%m-%dT%H:%M:%SZ}")
    click.echo(f"{len(due)} certificate(s) due within {days} days", err=True)


@renewals.command("revoke-superseded")
@click.pass_context
def renewals_revoke_superseded(ctx: click.Context) -> None:
    """Revoke replaced certificates once their successor is older than the grace period
    (CA_SERVICE_REVOKE_SUPERSEDED_AFTER_HOURS; 0, the default, turns this off). For cron."""
    settings = settings_of(ctx)
    if settings.revoke_superseded_after_hours <= 0:
        click.echo("revoke_superseded_after_hours is 0: superseded certificates are kept", err=True)
        return
    revoked = services_of(settings).revocation.revoke_superseded()
    for item in revoked:
        click.echo(item.serial)
    click.echo(f"{len(revoked)} superseded certificate(s) revoked", err=True)


@main.command()
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file listing the managed certificates (see ca_service/renewal/client.py).",
)
@click.option("--dry-run", is_flag=True, help="Only report what is due; order nothing, write nothing.")
@click.option("--wait", is_flag=True, help="Wait for a concurrent run to finish instead of exiting.")
def renew(config_file: Path, dry_run: bool, wait: bool) -> None:
    """Renew what is due (RFC 9773 renewal information) over ACME; meant for cron.

    Exits 0 when all is well (or another run holds the lock), 1 with one line per failure."""
    from ca_service.renewal.client import Renewer, load_config, run_lock

    managed, lock = load_config(config_file)
    with run_lock(lock, wait) as held:
        if not held:
            click.echo(f"another renewal run holds {lock}; nothing done", err=True)
            return
        renewer = Renewer(dry_run=dry_run)
        if len(managed) >= 10:  # a progress bar when there are many
            with click.progressbar(managed, label="renewing", file=sys.stderr, show_pos=True) as bar:
                outcomes = [renewer.process(m) for m in bar]
        else:
            outcomes = [renewer.process(m) for m in managed]
    for outcome in outcomes:
        click.echo(f"{outcome.name}: {outcome.state} ({outcome.detail})")
    failed = [o for o in outcomes if o.state == "failed"]
    counts = {s: sum(o.state == s for o in outcomes) for s in ("issued", "renewed", "not-due", "would-renew")}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f", {len(failed)} failed", err=True)
    if failed:
        for outcome in failed:
            click.echo(f"error: {outcome.name}: {outcome.detail}", err=True)
        sys.exit(1)
