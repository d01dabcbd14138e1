"""The ``ca-service`` command: set-up, serving, tokens, offline issuance, migrations."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from ca_service.config import Settings, load_settings
from ca_service.errors import CAError

ROOT = Path(__file__).resolve().parents[1]
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj if isinstance(ctx.obj, Settings) else load_settings()


def _fail(exc: CAError) -> None:
    click.echo(f"error: {exc.detail}", err=True)
    sys.exit(1)


class CAErrorGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CAError as exc:
            _fail(exc)


@click.group(cls=CAErrorGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """ca-service: a private CA for device client certificates (CN = device MAC)."""
    ctx.obj = load_settings()


# -- database -------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


def _upgrade(settings: Settings) -> None:
    from ca_service.store.migrate import upgrade

    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(settings.sqlalchemy_url)


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Upgrade the database schema to the newest revision."""
    _upgrade(_settings(ctx))
    click.echo("database is at the newest schema revision", err=True)


# -- CA set-up ------------------------------------------------------------------------------
def _services(settings: Settings) -> Any:
    from ca_service import build_services

    return build_services(settings)


def _actor() -> Any:
    """The admin principal of a command-line user (the CLI runs with the service's own rights)."""
    from ca_service.domain import Principal, Role

    return Principal(name=f"cli:{os.environ.get('USER', 'root')}", role=Role.ADMIN)


@main.command()
@click.option(
    "--issuing-key-type",
    default="ec-p256",
    show_default=True,
    type=click.Choice(["ec-p256", "ec-p384", "rsa-3072", "rsa-4096"]),
)
@click.option(
    "--root-key-type",
    default="ec-p384",
    show_default=True,
    type=click.Choice(["ec-p256", "ec-p384", "rsa-3072", "rsa-4096"]),
)
@click.option("--subject", default=None, help="Issuing CA subject, e.g. '/O=Example/CN=Device Issuing CA'.")
@click.option("--root-subject", default=None, help="Root CA subject.")
@click.option("--key-uri", default=None, help="Where the issuing key is made (file:... or pkcs11:...).")
@click.option("--root-key-uri", default=None, help="Where the root key is made (default: a file key).")
@click.option(
    "--issuing-csr-only", is_flag=True, help="Make only the issuing key and a CSR for an external root."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the CSR with --issuing-csr-only (default: stdout).",
)
@click.pass_context
def init(
    ctx: click.Context,
    issuing_key_type: str,
    root_key_type: str,
    subject: str | None,
    root_subject: str | None,
    key_uri: str | None,
    root_key_uri: str | None,
    issuing_csr_only: bool,
    out: Path | None,
) -> None:
    """Create the home folder, the schema, a root CA and an issuing CA. Refuses to overwrite."""
    from ca_service.enrollment import ca_setup

    settings = _settings(ctx)
    _upgrade(settings)
    kwargs: dict[str, Any] = {
        "issuing_key_type": issuing_key_type,
        "root_key_type": root_key_type,
        "issuing_key_uri": key_uri,
        "root_key_uri": root_key_uri,
        "csr_only": issuing_csr_only,
    }
    if subject:
        kwargs["issuing_subject"] = subject
    if root_subject:
        kwargs["root_subject"] = root_subject
    services = _services(settings)
    result = ca_setup.initialize(services.db, settings, **kwargs)
    if result.csr_pem:
        if out:
            out.write_text(result.csr_pem)
            click.echo(
                f"issuing CA CSR written to {out}; sign it with your root, then run "
                f"'ca-service issuer import issuing.pem --root root.pem'",
                err=True,
            )
        else:
            click.echo(result.csr_pem, nl=False)
        return
    _publish_first_crl(services)
    click.echo(
        f"created root CA {result.root_name} and issuing CA {result.issuing_name} in {settings.home}",
        err=True,
    )


def _publish_first_crl(services: Any) -> None:
    """A new issuing CA publishes its (empty) CRL at once: relying parties that check CRLs
    (nginx ssl_crl) need one before the first revocation, and /healthz wants it."""
    services.revocation.publish_due()


@main.group()
def issuer() -> None:
    """Issuing CAs."""


@issuer.command("import")
@click.argument("issuing", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--root", "root_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_context
def issuer_import(ctx: click.Context, issuing: Path, root_file: Path) -> None:
    """Activate the pending issuing CA with its certificate signed by an external root."""
    from ca_service.enrollment import ca_setup

    settings = _settings(ctx)
    services = _services(settings)
    name = ca_setup.import_issuer(services.db, settings, issuing.read_bytes(), root_file.read_bytes())
    _publish_first_crl(services)
    click.echo(f"issuing CA {name} is active", err=True)


@issuer.command("rotate")
@click.option("--key-uri", default=None, help="Where the new issuing key is made (file:... or pkcs11:...).")
@click.option(
    "--key-type",
    default=None,
    type=click.Choice(["ec-p256", "ec-p384", "rsa-3072", "rsa-4096"]),
    help="Default: the type of the current issuing key.",
)
@click.option("--subject", default=None, help="Subject of the new issuing CA (default: the current one's).")
@click.option(
    "--csr-only", is_flag=True, help="Make a CSR for an external root even if the root key is here."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the CSR when the root is external (default: stdout).",
)
@click.pass_context
def issuer_rotate(
    ctx: click.Context,
    key_uri: str | None,
    key_type: str | None,
    subject: str | None,
    csr_only: bool,
    out: Path | None,
) -> None:
    """Replace the active issuing CA with a new key and certificate; the old one is retiring."""
    from ca_service.enrollment import ca_setup

    settings = _settings(ctx)
    services = _services(settings)
    result = ca_setup.rotate(
        services.db,
        settings,
        key_uri=key_uri,
        key_type=key_type,
        subject=subject,
        csr_only=csr_only,
    )
    if result.csr_pem is None:
        _publish_first_crl(services)
        click.echo(
            f"issuing CA {result.issuing_name} is active; {result.retiring_name} is retiring", err=True
        )
        return
    if out:
        out.write_text(result.csr_pem)
        click.echo(f"CSR for {result.issuing_name} written to {out}", err=True)
    else:
        click.echo(result.csr_pem, nl=False)
    click.echo(
        "sign it with your root, then run 'ca-service issuer import issuing.pem --root root.pem'", err=True
    )


@issuer.command("list")
@click.pass_context
def issuer_list(ctx: click.Context) -> None:
    """List our CAs: name, role, state, validity, certificates issued, key URI."""
    from ca_service.enrollment import ca_setup

    for i in ca_setup.list_issuers(_services(_settings(ctx)).db):
        until = f"{i.not_after:%Y-%m-%d}" if i.not_after else "-"
        click.echo(
            f"{i.name}\t{i.role}\t{i.state}\tuntil {until}\t{i.certificates} certs\t{i.key_uri or '-'}"
        )


@issuer.command("retire")
@click.pass_context
def issuer_retire(ctx: click.Context) -> None:
    """Mark retiring issuers retired once their last certificate has expired (run daily)."""
    from ca_service.enrollment import ca_setup

    for name in ca_setup.retire_finished(_services(_settings(ctx)).db):
        click.echo(f"issuing CA {name} is retired", err=True)


# -- tokens ---------------------------------------------------------------------------------
@main.group()
def token() -> None:
    """API tokens (shown once, stored hashed)."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice(["admin", "provisioner", "auditor"]))
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="MAC prefix a provisioner may act on (repeatable).")
@click.pass_context
def token_create(ctx: click.Context, role: str, name: str, scopes: tuple[str, ...]) -> None:
    """Create a token and print it (only the token, on stdout)."""
    from ca_service.enrollment.tokens import create_token

    click.echo(create_token(_services(_settings(ctx)).db, name=name, role=role, scopes=scopes))


@token.command("list")
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """List tokens (names, roles, scopes; never the tokens)."""
    from ca_service.enrollment.tokens import list_tokens

    for t in list_tokens(_services(_settings(ctx)).db):
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
        click.echo(f"{t.name}\t{t.role}\t{','.join(t.scopes) or '-'}\t{state}")


@token.command("revoke")
@click.argument("name")
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token by name."""
    from ca_service.enrollment.tokens import revoke_token

    revoke_token(_services(_settings(ctx)).db, name)
    click.echo(f"token {name} revoked", err=True)


# -- ACME external account binding and renewals ------------------------------------------------
@main.group()
def eab() -> None:
    """ACME external account binding keys (RFC 8555 section 7.3.4)."""


@eab.command("create")
@click.option("--name", required=True, help="Who the key is for, e.g. the provisioning platform.")
@click.option("--scope", "scopes", required=True, multiple=True, help="MAC prefix (repeatable), e.g. 7C2F80.")
@click.option("--json", "as_json", is_flag=True, help='Print {"kid": ..., "hmac_key": ...}.')
@click.pass_context
def eab_create(ctx: click.Context, name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create an EAB key and print its kid and HMAC key (shown once; binds one ACME account)."""
    kid, hmac_key = _services(_settings(ctx)).acme.create_eab(name, scopes)
    if as_json:
        click.echo(json.dumps({"kid": kid, "hmac_key": hmac_key}))
    else:
        click.echo(f"kid:      {kid}\nhmac_key: {hmac_key}")


@main.group()
def renewals() -> None:
    """Certificate renewals (RFC 9773 windows, lineage)."""


@renewals.command("due")
@click.option("--days", type=int, default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def renewals_due(ctx: click.Context, days: int, as_json: bool) -> None:
    """Valid certificates expiring within --days that have no successor."""
    due = _services(_settings(ctx)).renewals.due(days)
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
    settings = _settings(ctx)
    if settings.revoke_superseded_after_hours <= 0:
        click.echo("revoke_superseded_after_hours is 0: superseded certificates are kept", err=True)
        return
    revoked = _services(settings).renewals.revoke_superseded()
    for serial in revoked:
        click.echo(serial)
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


# -- issuance -------------------------------------------------------------------------------
@main.command()
@click.option(
    "--csr", "csr_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Certificate file."
)
@click.option(
    "--chain-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the issuing chain here.",
)
@click.option("--profile", default=None)
@click.pass_context
def issue(ctx: click.Context, csr_file: Path, out: Path, chain_out: Path | None, profile: str | None) -> None:
    """Issue a certificate from a CSR offline, through the same code path as the API."""
    settings = _settings(ctx)
    cert = _services(settings).enrollment.issue(csr_file.read_bytes(), _actor(), profile)
    out.write_text(cert.certificate_pem)
    if chain_out:
        chain_out.write_text(cert.chain_pem)
    click.echo(f"issued {cert.serial} for {cert.mac}, valid until {cert.not_after:%Y-%m-%d}", err=True)


# -- trust bundle ---------------------------------------------------------------------------
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
    anchor = _services(_settings(ctx)).bundle.add(file.read_bytes(), purpose, label, _actor())
    click.echo(
        f"anchor {anchor['id']} '{anchor['label']}' ({anchor['purpose']}) "
        f"sha256 {anchor['fingerprint_sha256']}, expires {anchor['not_after']:%Y-%m-%d}"
    )
    for warning in anchor["warnings"]:
        click.echo(f"warning: {warning}", err=True)


@trust.command("list")
@click.option("--all", "include_retired", is_flag=True, help="Include retired anchors.")
@click.pass_context
def trust_list(ctx: click.Context, include_retired: bool) -> None:
    """List trust anchors: id, purpose, label, expiry, state, SHA-256 fingerprint."""
    for a in _services(_settings(ctx)).bundle.anchors(include_retired):
        state = f"retired {a['retired_at']:%Y-%m-%d}" if a["retired_at"] else "active"
        if not a["retired_at"] and a["expires_within_90_days"]:
            state = "active, EXPIRES WITHIN 90 DAYS"
        click.echo(
            f"{a['id']}\t{a['purpose']}\t{a['label']}\t{a['not_after']:%Y-%m-%d}\t{state}\t{a['fingerprint_sha256']}"
        )


@trust.command("retire")
@click.argument("anchor_id", type=int)
@click.pass_context
def trust_retire(ctx: click.Context, anchor_id: int) -> None:
    """Take an anchor out of the bundle (its record is kept)."""
    anchor = _services(_settings(ctx)).bundle.retire(anchor_id, _actor())
    click.echo(f"anchor {anchor['id']} '{anchor['label']}' retired", err=True)


@trust.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: stdout.")
@click.option("--purpose", default=None, help="Comma-separated purposes, e.g. gigaset-factory,private.")
@click.option("--firmware", default=None, help="Only what devices on this software need, e.g. 2.61.")
@click.option("--json", "as_json", is_flag=True, help="The JSON document instead of PEM.")
@click.pass_context
def trust_export(
    ctx: click.Context, out: Path | None, purpose: str | None, firmware: str | None, as_json: bool
) -> None:
    """Write the trust bundle (what GET /trust/bundle.pem serves)."""
    published = _services(_settings(ctx)).bundle.publish(purpose, firmware)
    text = json.dumps(published.document, indent=2, sort_keys=True) + "\n" if as_json else published.pem
    if out:
        out.write_text(text)
        click.echo(
            f"bundle version {published.document['version']}: {published.document['count']} certificate(s) "
            f"written to {out}",
            err=True,
        )
    else:
        click.echo(text, nl=False)


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
    import socket

    from ca_service.bundle import capture
    from ca_service.bundle.anchors import fingerprint
    from ca_service.bundle.inspect import suggested_purpose

    if bool(cert_file) != bool(key_file):
        raise click.UsageError("Give both --cert and --key, or neither.")
    host, port = capture.parse_listen(listen)
    context = capture.server_context(cert_file, key_file, host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(8)
        click.echo(f"listening on {host}:{port}; saving to {out}", err=True)
        try:
            for presented in capture.serve(context, listener, count):
                click.echo(f"connection from {presented.peer}")
                if presented.error:
                    click.echo(f"  {presented.error}")
                    continue
                if not presented.chain:
                    click.echo("  no client certificate was presented")
                    continue
                for depth, cert in enumerate(presented.chain):
                    click.echo(f"  [{depth}] subject: {cert.subject.rfc4514_string()}")
                    click.echo(f"      issuer:  {cert.issuer.rfc4514_string()}")
                    click.echo(f"      sha256:  {fingerprint(cert)}")
                    click.echo(f"      sha1:    {capture.sha1_fingerprint(cert)}")
                    click.echo(f"      expires: {cert.not_valid_after_utc:%Y-%m-%d}")
                for path in capture.save(presented, out):
                    click.echo(f"  saved {path}")
                click.echo(f"  next: {suggested_purpose(presented.chain)}")
        except KeyboardInterrupt:
            click.echo("stopped", err=True)


@main.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the JSON answer of POST /api/v1/inspect.")
@click.pass_context
def inspect_command(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Say what a device certificate (PEM or DER, optionally followed by its chain) is."""
    r = _services(_settings(ctx)).bundle.inspect(file.read_bytes())
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
    click.echo("\n".join(lines))


# -- devices --------------------------------------------------------------------------------
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

    actor = _actor()
    with csv_file.open(newline="", encoding="utf-8-sig") as fh:
        total = sum(1 for _ in fh)
    with (
        csv_file.open(newline="", encoding="utf-8-sig") as fh,
        click.progressbar(length=total, label="importing", file=sys.stderr) as bar,
    ):
        result = _services(_settings(ctx)).devices.import_csv(
            actor, fh, batch_size=batch_size, progress=lambda line: bar.update(line - bar.pos)
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
        writer.writerows([r.line, r.mac, r.reason] for r in result.rejected)
        if report:
            out.close()
            click.echo(f"rejected rows written to {report}", err=True)
        sys.exit(2)


@devices.command("purge-keys")
@click.pass_context
def devices_purge_keys(ctx: click.Context) -> None:
    """Delete wrapped device keys whose download expired (run it from cron; downloads and
    provisioning requests also purge on the way)."""
    count = _services(_settings(ctx)).credentials.purge()
    click.echo(f"{count} expired device key(s) deleted", err=True)


# -- revocation -----------------------------------------------------------------------------
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

    services = _services(_settings(ctx))
    actor = _actor()
    when = invalidity_date.replace(tzinfo=UTC) if invalidity_date else None
    done = services.revocation.revoke(serial, reason, when, actor)
    click.echo(f"revoked {done.serial} ({done.mac}) for {done.reason}", err=True)
    if publish:
        services.revocation.publish_due()
        click.echo("CRL regenerated", err=True)


@main.group()
def crl() -> None:
    """CRLs."""


@crl.command("publish")
@click.option("--force", is_flag=True, help="Regenerate even CRLs that are up to date.")
@click.pass_context
def crl_publish(ctx: click.Context, force: bool) -> None:
    """Regenerate due CRLs now (the service does it on its own; for cron or after a restore)."""
    services = _services(_settings(ctx))
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
    from ca_service.authority.crl import crl_pem

    der = _services(_settings(ctx)).revocation.root_crl(days)
    out.write_bytes(crl_pem(der))
    click.echo(f"root CRL written to {out}, valid {days} days; renew it before then", err=True)


# -- serving --------------------------------------------------------------------------------
def ensure_initialized(settings: Settings) -> Path | None:
    """On an empty home: migrate, create a development CA and an admin token file (0600).
    Returns the token file when it made one."""
    from ca_service.enrollment import ca_setup
    from ca_service.enrollment.tokens import create_token
    from ca_service.keystore.file import write_private

    _upgrade(settings)
    services = _services(settings)
    if ca_setup.issuer_records(services.db):
        return None
    ca_setup.initialize(services.db, settings)
    _publish_first_crl(services)
    token_file = settings.home / "admin-token"
    write_private(token_file, (create_token(services.db, name="dev-admin", role="admin") + "\n").encode())
    return token_file


@main.command()
@click.option("--bind", default=None, help="host:port (default from settings, 127.0.0.1:8000).")
@click.option("--workers", type=int, default=None, help="gunicorn workers (default 2 x CPUs).")
@click.pass_context
def serve(ctx: click.Context, bind: str | None, workers: int | None) -> None:
    """Run the service under gunicorn; on an empty home, set up a development CA first."""
    settings = _settings(ctx)
    token_file = ensure_initialized(settings)
    if token_file:
        click.echo(f"created a development CA in {settings.home.resolve()}", err=True)
        click.echo(f"admin token written to {token_file.resolve()} (mode 0600)", err=True)
    env = dict(os.environ)
    env["CA_SERVICE_HOME"] = str(settings.home.resolve())
    env["CA_SERVICE_BIND"] = bind or settings.bind
    if "PROMETHEUS_MULTIPROC_DIR" not in env:  # one metrics folder per server run, summed by /metrics
        metrics_dir = settings.home.resolve() / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if workers or settings.workers:
        env["CA_SERVICE_WORKERS"] = str(workers or settings.workers)
    click.echo(f"serving on http://{env['CA_SERVICE_BIND']} (API docs at /docs)", err=True)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "ca_service:create_app()"]
    os.execvpe(argv[0], argv, env)  # noqa: S606 - fixed argv, no shell


# -- documents ------------------------------------------------------------------------------
def openapi_document(settings: Settings) -> dict[str, Any]:
    from ca_service import create_app

    app = create_app(settings)
    return app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()  # type: ignore[no-any-return]


@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_context
def openapi(ctx: click.Context, out: Path | None) -> None:
    """Print (or write) the OpenAPI document."""
    text = json.dumps(openapi_document(_settings(ctx)), indent=2, sort_keys=True) + "\n"
    if out:
        out.write_text(text)
    else:
        click.echo(text, nl=False)


@main.command("config")
@click.pass_context
def show_config(ctx: click.Context) -> None:
    """Print the effective settings (secrets masked)."""
    click.echo(json.dumps(_settings(ctx).public_dump(), indent=2, default=str))


if __name__ == "__main__":
    main()
