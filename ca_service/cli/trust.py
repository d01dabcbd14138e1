"""`ca-service` trust anchors, the trust bundle, captures and inspection."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ca_service.cli.base import (
    OUT_FILE,
    actor,
    json_option,
    main,
    services_of,
    settings_of,
    show,
    write_out,
)
from ca_service.domain import escape_controls

OUT_OF_BAND = (
    "  check: names are whatever the client sent and can be faked; compare the SHA-256 "
    "fingerprints with Gigaset (or the device's vendor) out of band before 'trust add'."
)


def say(text: str, err: bool = False) -> None:
    """One line of output that may hold foreign data (certificate names, labels, peers):
    control characters are shown escaped, never sent to the terminal."""
    click.echo(escape_controls(text), err=err)


@main.group()
def trust() -> None:
    """Trust anchors and the trust bundle for provisioning servers."""


@trust.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--purpose", required=True, type=click.Choice(["gigaset-factory", "gigaset-technologies", "other"])
)
@click.option("--label", required=True, help="A name for people, e.g. 'Gigaset.net factory CA'.")
@click.pass_context
def trust_add(ctx: click.Context, file: Path, purpose: str, label: str) -> None:
    """Import a CA certificate (PEM or DER) as a trust anchor."""
    anchor = services_of(settings_of(ctx)).bundle.add(file.read_bytes(), purpose, label, actor())
    say(
        f"anchor {anchor['id']} '{anchor['label']}' ({anchor['purpose']}) "
        f"sha256 {anchor['fingerprint_sha256']}, expires {anchor['not_after']:%Y-%m-%d}"
    )
    for warning in anchor["warnings"]:
        say(f"warning: {warning}", err=True)


@trust.command("list")
@click.option("--all", "include_retired", is_flag=True, help="Include retired anchors.")
@json_option
@click.pass_context
def trust_list(ctx: click.Context, include_retired: bool, as_json: bool) -> None:
    """List trust anchors: id, purpose, label, expiry, state, SHA-256 fingerprint."""
    rows = []
    for a in services_of(settings_of(ctx)).bundle.anchors(include_retired):
        state = "retired" if a["retired_at"] else "active"
        if not a["retired_at"] and a["expires_within_90_days"]:
            state = "active, EXPIRES WITHIN 90 DAYS"
        rows.append({**a, "state": state})
    show(rows, ("id", "purpose", "label", "not_after", "state", "fingerprint_sha256"), as_json)


@trust.command("retire")
@click.argument("anchor_id", type=int)
@click.pass_context
def trust_retire(ctx: click.Context, anchor_id: int) -> None:
    """Take an anchor out of the bundle (its record is kept)."""
    anchor = services_of(settings_of(ctx)).bundle.retire(anchor_id, actor())
    say(f"anchor {anchor['id']} '{anchor['label']}' retired", err=True)


@trust.command("export")
@click.option("--out", type=OUT_FILE, default=None, help="Default or '-': stdout.")
@click.option("--purpose", default=None, help="Comma-separated purposes, e.g. gigaset-factory,private.")
@click.option("--firmware", default=None, help="Only what devices on this software need, e.g. 2.61.")
@click.option(
    "--anchors",
    type=click.Choice(["all", "roots"]),
    default="all",
    show_default=True,
    help="roots: only root CAs are anchors (issuing CAs become intermediates checked for revocation).",
)
@click.option("--json", "as_json", is_flag=True, help="The JSON document instead of PEM.")
@click.pass_context
def trust_export(
    ctx: click.Context,
    out: Path | None,
    purpose: str | None,
    firmware: str | None,
    anchors: str,
    as_json: bool,
) -> None:
    """Write the trust bundle (what GET /trust/bundle.pem serves)."""
    published = services_of(settings_of(ctx)).bundle.publish(purpose, firmware, anchors == "roots")
    text = json.dumps(published.document, indent=2, sort_keys=True) + "\n" if as_json else published.pem
    if write_out(out, text):
        click.echo(
            f"bundle version {published.document['version']}: {published.document['count']} certificate(s) "
            f"written to {out}",
            err=True,
        )


@trust.command("capture")
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="HOST:PORT to listen on.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("captured"), show_default=True
)
@click.option(
    "--cert", "cert_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None
)
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--count", type=int, default=None, help="Stop after this many connections (default: Ctrl-C).")
def trust_capture(
    listen: str, out: Path, cert_file: Path | None, key_file: Path | None, count: int | None
) -> None:
    """Run a TLS server that asks for any client certificate and records what devices present.

    Point a device's provisioning URL at https://HOST:PORT/. Without --cert/--key the server uses a
    throw-away self-signed certificate; a device that checks server certificates needs one it trusts.
    """
    from ca_service.bundle import capture
    from ca_service.bundle.anchors import fingerprint
    from ca_service.bundle.inspect import suggested_purpose

    if bool(cert_file) != bool(key_file):
        raise click.UsageError("Give both --cert and --key, or neither.")
    with capture.listening(listen, cert_file, key_file) as server:
        click.echo(f"listening on {server.address}; saving to {out}", err=True)
        try:
            for presented in server.serve(count):
                say(f"connection from {presented.peer}")
                if presented.error:
                    say(f"  {presented.error}")
                    continue
                if not presented.chain:
                    click.echo("  no client certificate was presented")
                    continue
                for depth, cert in enumerate(presented.chain):
                    say(f"  [{depth}] subject: {cert.subject.rfc4514_string()}")
                    say(f"      issuer:  {cert.issuer.rfc4514_string()}")
                    click.echo(f"      sha256:  {fingerprint(cert)}")
                    click.echo(f"      sha1:    {capture.sha1_fingerprint(cert)}")
                    click.echo(f"      expires: {cert.not_valid_after_utc:%Y-%m-%d}")
                for path in capture.save(presented, out):
                    say(f"  saved {path}")
                say(f"  next: {suggested_purpose(presented.chain)}")
                click.echo(OUT_OF_BAND)
        except KeyboardInterrupt:
            click.echo("stopped", err=True)


@main.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the JSON answer of POST /api/v1/inspect.")
@click.pass_context
def inspect_command(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Say what a device certificate (PEM or DER, optionally followed by its chain) is."""
    r = services_of(settings_of(ctx)).bundle.inspect(file.read_bytes(), actor())
    if as_json:
        click.echo(json.dumps(r, indent=2, sort_keys=True))
        return
    chain = r["chain"]
    anchor = chain["anchor"]
    lines = [
        f"generation:  {r['generation']} - {r['description']}",
        f"MAC:         {r['mac'] or 'none (' + (r['mac_problem'] or '') + ')'}",
        f"subject:     {r['subject']}",
        f"issuer:      {r['issuer']}",
        f"serial:      {r['serial']}",
        f"sha256:      {r['fingerprint_sha256']}",
        f"key:         {r['key']['type']} {r['key']['bits']} bits{' (WEAK)' if r['key']['weak'] else ''}",
        f"signature:   {r['signature']['algorithm']}"
        + (
            " (refused by device software >= 2.57)"
            if r["signature"]["refused_by_software_2_57_and_later"]
            else ""
        ),
        f"validity:    {r['validity']['not_before'][:10]} .. {r['validity']['not_after'][:10]}"
        + (" (EXPIRED)" if r["validity"]["expired"] else f" ({r['validity']['days_left']} days left)"),
        "bundle:      "
        + (
            f"chains to '{anchor['label']}' ({anchor['purpose']})"
            if chain["chains_to_bundle"]
            else chain["problem"]
        ),
    ]
    if r["ours"]:
        ours = r["ours"]
        lines.append(f"ours:        serial {ours['serial']}, status {ours.get('status', 'not on record')}")
    lines += [f"next:        {a}" for a in r["advice"]]
    for line in lines:
        say(line)
