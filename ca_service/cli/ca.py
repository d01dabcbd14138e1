"""`ca-service` CA set-up: init and the issuer commands."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from ca_service.cli.base import (
    CA_KEY_TYPE,
    OUT_FILE,
    actor,
    json_option,
    main,
    publish_first_crl,
    services_of,
    settings_of,
    show,
    upgrade_schema,
    write_out,
)

DEV_WARNING = (
    "WARNING: development CA. File keys may be sealed with a passphrase kept in the home folder: "
    "anyone with a copy of the home (a backup, a stolen disk) has the CA keys."
)


@main.command()
@click.option(
    "--issuing-key-type",
    default="ec-p256",
    show_default=True,
    type=CA_KEY_TYPE,
)
@click.option(
    "--root-key-type",
    default="ec-p384",
    show_default=True,
    type=CA_KEY_TYPE,
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
    type=OUT_FILE,
    default=None,
    help="Where to write the CSR with --issuing-csr-only (default or '-': stdout).",
)
@click.option(
    "--root",
    "root_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --issuing-csr-only: the external root's certificate, to name its CRL URL exactly.",
)
@click.option(
    "--dev",
    is_flag=True,
    help="Development: let the file key passphrase be generated into (or read from) the home.",
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
    root_file: Path | None,
    dev: bool,
) -> None:
    """Create the home folder, the schema, a root CA and an issuing CA. Refuses to overwrite.

    File keys need the key passphrase from CA_SERVICE_KEY_PASSPHRASE, a file outside the home
    (CA_SERVICE_KEY_PASSPHRASE_FILE) or the systemd credential key-passphrase, and a strong one;
    --dev allows the generated development passphrase in the home."""
    from cryptography import x509

    from ca_service.issuers import lifecycle

    root_cert = x509.load_pem_x509_certificate(root_file.read_bytes()) if root_file else None
    settings = settings_of(ctx, "create")
    upgrade_schema(settings)
    kwargs: dict[str, Any] = {
        "issuing_key_type": issuing_key_type,
        "root_key_type": root_key_type,
        "issuing_key_uri": key_uri,
        "root_key_uri": root_key_uri,
        "csr_only": issuing_csr_only,
        "production": not dev,
    }
    if subject:
        kwargs["issuing_subject"] = subject
    if root_subject:
        kwargs["root_subject"] = root_subject
    services = services_of(settings)
    result = lifecycle.initialize(services.db, settings, **kwargs)
    if dev:
        click.echo(DEV_WARNING, err=True)
    if result.csr_pem:
        if write_out(out, result.csr_pem):
            click.echo(f"issuing CA CSR written to {out}", err=True)
        root_name = lifecycle.external_root_name(root_cert) if root_cert else "root-<12 hex digits>"
        _tell_external(lifecycle.extension_text(settings, root_name), known=root_cert is not None)
        return
    publish_first_crl(services)
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
    from ca_service.issuers import lifecycle

    settings = settings_of(ctx)
    services = services_of(settings)
    name = lifecycle.import_issuer(services.db, settings, issuing.read_bytes(), root_file.read_bytes())
    publish_first_crl(services)
    click.echo(f"issuing CA {name} is active", err=True)


@issuer.command("rotate")
@click.option("--key-uri", default=None, help="Where the new issuing key is made (file:... or pkcs11:...).")
@click.option(
    "--key-type",
    default=None,
    type=CA_KEY_TYPE,
    help="Default: the type of the current issuing key.",
)
@click.option("--subject", default=None, help="Subject of the new issuing CA (default: the current one's).")
@click.option(
    "--csr-only", is_flag=True, help="Make a CSR for an external root even if the root key is here."
)
@click.option(
    "--out",
    type=OUT_FILE,
    default=None,
    help="Where to write the CSR when the root is external (default or '-': stdout).",
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
    from ca_service.issuers import lifecycle

    settings = settings_of(ctx)
    services = services_of(settings)
    result = lifecycle.rotate(
        services.db,
        settings,
        key_uri=key_uri,
        key_type=key_type,
        subject=subject,
        csr_only=csr_only,
    )
    if result.csr_pem is None:
        publish_first_crl(services)
        retiring = f"; {result.retiring_name} is retiring" if result.retiring_name else ""
        click.echo(f"issuing CA {result.issuing_name} is active{retiring}", err=True)
        return
    if write_out(out, result.csr_pem):
        click.echo(f"CSR for {result.issuing_name} written to {out}", err=True)
    _tell_external(lifecycle.extension_text(settings, result.root_name), known=True)


def _tell_external(extensions: str, known: bool) -> None:
    """What the operator of an external root puts into the issuing CA certificate (openssl
    -extfile lines), and the next step."""
    click.echo(
        "sign it with your root, with these extensions in the certificate (openssl x509 -req "
        "-extfile), so that clients find the root's CRL and certificate:",
        err=True,
    )
    click.echo(extensions, err=True, nl=False)
    if not known:
        click.echo(
            "  (<12 hex digits>: the start of the root certificate's SHA-256 fingerprint, lower case; "
            "give --root root.pem to have it filled in)",
            err=True,
        )
    click.echo("then run 'ca-service issuer import issuing.pem --root root.pem'", err=True)


@issuer.command("list")
@json_option
@click.pass_context
def issuer_list(ctx: click.Context, as_json: bool) -> None:
    """List our CAs: name, role, state, validity, certificates issued, key URI (never a PIN)."""
    from ca_service.issuers import lifecycle

    rows = [dataclasses.asdict(i) for i in lifecycle.list_issuers(services_of(settings_of(ctx)).db)]
    show(rows, ("name", "role", "state", "not_after", "certificates", "key_uri"), as_json)


@issuer.command("retire")
@click.pass_context
def issuer_retire(ctx: click.Context) -> None:
    """Mark retiring issuers retired once their last certificate has expired (run daily)."""
    from ca_service.issuers import lifecycle

    for name in lifecycle.retire_finished(services_of(settings_of(ctx)).db):
        click.echo(f"issuing CA {name} is retired", err=True)


@issuer.command("check")
@click.pass_context
def issuer_check(ctx: click.Context) -> None:
    """Sign a test message with the key of every CA that signs (one key store login each).
    When all can sign, running workers offer credentials again that a key store had refused
    (a PIN fixed on the token). Exits 1 when a key cannot sign, naming why."""
    settings = settings_of(ctx)
    from ca_service.issuers import lifecycle

    results = lifecycle.check_keys(services_of(settings).db, settings)
    show([{"issuer": name, "outcome": outcome} for name, outcome in results], ("issuer", "outcome"), False)
    if any(outcome != "ok" for _, outcome in results):
        sys.exit(1)


@issuer.command("revoke")
@click.argument("name")
@click.option(
    "--reason",
    default="cessationOfOperation",
    show_default=True,
    help="RFC 5280 reason: cACompromise (its key is compromised), superseded, "
    "cessationOfOperation, affiliationChanged or unspecified.",
)
@click.pass_context
def issuer_revoke(ctx: click.Context, name: str, reason: str) -> None:
    """Revoke an issuing CA by its root: it signs nothing from now on, and the root CRL lists it
    (published at once when the root key is here). Make a new one with 'issuer rotate'."""
    services = services_of(settings_of(ctx))
    revoked = services.revocation.revoke_issuer(name, reason, actor=actor().label)
    if revoked.in_root_crl:
        publish_first_crl(services)
        click.echo(
            f"issuing CA {revoked.name} (serial {revoked.serial}) is revoked and in the root CRL", err=True
        )
    else:
        click.echo(
            f"issuing CA {revoked.name} (serial {revoked.serial}) signs nothing any more; revoke it with "
            "your external root too and run 'ca-service crl import' with the new root CRL",
            err=True,
        )
