"""The ``ca-service`` command: set-up, serving, tokens, offline issuance, migrations."""

from __future__ import annotations

import json
import os
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
        "csr_only": issuing_csr_only,
    }
    if subject:
        kwargs["issuing_subject"] = subject
    if root_subject:
        kwargs["root_subject"] = root_subject
    result = ca_setup.initialize(_services(settings).db, settings, **kwargs)
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
    click.echo(
        f"created root CA {result.root_name} and issuing CA {result.issuing_name} in {settings.home}",
        err=True,
    )


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
    name = ca_setup.import_issuer(
        _services(settings).db, settings, issuing.read_bytes(), root_file.read_bytes()
    )
    click.echo(f"issuing CA {name} is active", err=True)


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
    from ca_service.domain import Principal, Role

    settings = _settings(ctx)
    actor = Principal(name=f"cli:{os.environ.get('USER', 'root')}", role=Role.ADMIN)
    cert = _services(settings).enrollment.issue(csr_file.read_bytes(), actor, profile)
    out.write_text(cert.certificate_pem)
    if chain_out:
        chain_out.write_text(cert.chain_pem)
    click.echo(f"issued {cert.serial} for {cert.mac}, valid until {cert.not_after:%Y-%m-%d}", err=True)


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

    from ca_service.domain import Principal, Role

    services = _services(_settings(ctx))
    actor = Principal(name=f"cli:{os.environ.get('USER', 'root')}", role=Role.ADMIN)
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
