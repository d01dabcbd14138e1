"""`ca-service audit`: read and export the audit log."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import click

from ca_service.cli.base import json_line, main, services_of, settings_of, show
from ca_service.errors import CAError, Kind
from ca_service.store import audit as store

BATCH = 1000
_AGO = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def moment(text: str | None) -> datetime | None:
    """A point in time from the command line: ISO 8601 (a date, or a date and time; UTC when
    no zone is given) or an age such as 30m, 12h, 7d (that long ago)."""
    if not text:
        return None
    if match := _AGO.fullmatch(text.strip()):
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise CAError(
            Kind.MALFORMED,
            f"'{text[:40]}' is not a time: give 2026-11-01, 2026-11-01T08:00:00Z or an age (12h, 7d).",
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@main.command("audit")
@click.option(
    "--since", default=None, help="From this time on: 2026-11-01, 2026-11-01T08:00Z, or 12h, 7d ago."
)
@click.option("--until", default=None, help="Before this time (same forms as --since).")
@click.option(
    "--actor", default=None, help="As recorded, e.g. admin:ops, provisioner:acme-account-3, cli:alice."
)
@click.option("--action", default=None, help="e.g. certificate.issue; acme.* for every ACME action.")
@click.option("--mac", default=None, help="A device MAC, any spelling.")
@click.option("--serial", default=None, help="A certificate serial (hex, as openssl prints it).")
@click.option(
    "--json", "as_json", is_flag=True, help="Export as JSON lines (one event per line), oldest first."
)
@click.pass_context
def audit(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    actor: str | None,
    action: str | None,
    mac: str | None,
    serial: str | None,
    as_json: bool,
) -> None:
    """Print the audit log, oldest first: who did what, when, to which MAC and serial, and how
    it ended. Every issuance, revocation, token, EAB key, ACME account, trust anchor, device
    import and download is there, written in the same transaction as the change."""
    wanted = store.AuditFilter.of(
        since=moment(since), until=moment(until), actor=actor, action=action, mac=mac, serial=serial
    )
    db = services_of(settings_of(ctx)).db
    rows: list[dict[str, object]] = []
    last = 0
    while True:
        with db.read() as session:
            batch = store.after(session, wanted, last, BATCH)
        for event in batch:
            row = dataclasses.asdict(event)
            if as_json:
                click.echo(json_line(row))
            else:
                rows.append({**row, "detail": json_line(event.detail)})
        if len(batch) < BATCH:
            break
        last = batch[-1].id
    if not as_json:
        show(rows, ("at", "actor", "action", "outcome", "mac", "serial", "detail"), False)
