"""`ca-service` renewals: the report, superseded revocation and the cron renewal client."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ca_service.cli.base import (
    json_option,
    main,
    services_of,
    settings_of,
    show,
)


@main.group()
def renewals() -> None:
    """Certificate renewals (RFC 9773 windows, lineage)."""


@renewals.command("due")
@click.option("--days", type=click.IntRange(0, 3650), default=30, show_default=True)
@json_option
@click.pass_context
def renewals_due(ctx: click.Context, days: int, as_json: bool) -> None:
    """Valid certificates expiring within --days that have no successor."""
    due, _ = services_of(settings_of(ctx)).renewals.due(days)
    rows = [{"mac": d.mac, "serial": d.serial, "not_after": d.not_after} for d in due]
    show(rows, ("mac", "serial", "not_after"), as_json)
    if not as_json:
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
    help="TOML file listing the managed certificates (keys below).",
)
@click.option("--dry-run", is_flag=True, help="Only report what is due; order nothing, write nothing.")
@click.option("--wait", is_flag=True, help="Wait for a concurrent run to finish instead of exiting.")
def renew(config_file: Path, dry_run: bool, wait: bool) -> None:
    """Renew what is due (RFC 9773 renewal information) over ACME; meant for cron.

    The config file is TOML: an optional lock_file (default: <config>.lock) and one
    [[certificate]] table per managed certificate with name, mac, directory (the ACME
    directory URL), cert (leaf + chain file), key (written 0600), account_key (made on first
    use), and optionally eab_kid and eab_hmac_key (from 'ca-service eab create', needed until
    the account exists), rekey (a new key per renewal, default true), profile, hook (a command
    run without a shell after a renewal) and ca_bundle (TLS trust for an https directory).

    \b
    Example:
      [[certificate]]
      name = "base-1"
      mac = "7C2F80C6E5C2"
      directory = "https://ca.example/acme/directory"
      cert = "/etc/dect/base-1.pem"
      key = "/etc/dect/base-1.key"
      account_key = "/etc/ca-renew/account.key"
      eab_kid = "eab-..."
      eab_hmac_key = "..."

    Prints one line per certificate and a summary. Exits 0 when all is well (or another run
    holds the lock), 1 with one 'error: <name>: <reason>' line per failure."""
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
