"""`ca-service` devices: bulk registration, housekeeping."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ca_service.cli.base import (
    actor,
    main,
    services_of,
    settings_of,
)

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as a formula


def report_cell(value: object) -> str:
    """A cell of the rejected-rows report: a text a spreadsheet would run as a formula
    (``=``, ``+``, ``-``, ``@``, tab, CR first) gets a leading apostrophe, so it is shown as
    text (OWASP "CSV injection")."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@main.group()
def devices() -> None:
    """Devices: bulk registration, housekeeping of keys made for devices."""


@devices.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", default=500, show_default=True, help="Rows per transaction.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the rejected rows here as CSV (line,mac,reason); default: stderr.",
)
@click.pass_context
def devices_import(ctx: click.Context, csv_file: Path, batch_size: int, report: Path | None) -> None:
    """Register devices from a CSV (header: mac, model, firmware; other columns are labels).
    Idempotent: re-running it changes nothing. Bad rows are reported, good rows kept."""
    import csv

    principal = actor()
    with csv_file.open(newline="", encoding="utf-8-sig") as fh:
        total = sum(1 for _ in fh)
    with (
        csv_file.open(newline="", encoding="utf-8-sig") as fh,
        click.progressbar(length=total, label="importing", file=sys.stderr) as bar,
    ):
        result = services_of(settings_of(ctx)).devices.import_csv(
            principal, fh, batch_size=batch_size, progress=lambda line: bar.update(line - bar.pos)
        )
    click.echo(
        f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged, "
        f"{len(result.rejected)} rejected",
        err=True,
    )
    if result.rejected:
        out = report.open("w", newline="") if report else sys.stderr
        writer = csv.writer(out)
        writer.writerow(["line", "mac", "reason"])
        writer.writerows([r.line, report_cell(r.mac), report_cell(r.reason)] for r in result.rejected)
        if report:
            out.close()
            click.echo(f"rejected rows written to {report}", err=True)
        sys.exit(2)


@devices.command("purge-keys")
@click.pass_context
def devices_purge_keys(ctx: click.Context) -> None:
    """Delete wrapped device keys whose download expired (run it from cron; downloads and
    provisioning requests also purge on the way)."""
    count = services_of(settings_of(ctx)).credentials.purge()
    click.echo(f"{count} expired device key(s) deleted", err=True)
