"""`ca-service` ACME: external account binding keys and the accounts bound to them."""

from __future__ import annotations

import dataclasses
import json

import click

from ca_service.cli.base import (
    actor,
    json_option,
    main,
    services_of,
    settings_of,
    show,
)


@main.group()
def eab() -> None:
    """ACME external account binding keys (RFC 8555 section 7.3.4): one per provisioning
    platform or renewal job, scoped to MAC prefixes, each binds one ACME account."""


@eab.command("create")
@click.option("--name", required=True, help="Who the key is for, e.g. the provisioning platform.")
@click.option("--scope", "scopes", required=True, multiple=True, help="MAC prefix (repeatable), e.g. 7C2F80.")
@click.option("--json", "as_json", is_flag=True, help='Print {"kid": ..., "hmac_key": ...}.')
@click.pass_context
def eab_create(ctx: click.Context, name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create an EAB key and print its kid and HMAC key (shown once; binds one ACME account).
    A name is unique among the keys that are not revoked."""
    kid, hmac_key = services_of(settings_of(ctx)).acme.create_eab(name, scopes)
    if as_json:
        click.echo(json.dumps({"kid": kid, "hmac_key": hmac_key}))
    else:
        click.echo(f"kid:      {kid}\nhmac_key: {hmac_key}")


@eab.command("list")
@json_option
@click.pass_context
def eab_list(ctx: click.Context, as_json: bool) -> None:
    """List EAB keys: kid, name, scopes, state (unused, bound, revoked), the account each bound,
    created and revoked times (never the HMAC key)."""
    rows = [
        {**dataclasses.asdict(k), "state": k.state}
        for k in services_of(settings_of(ctx)).acme_admin.eab_keys()
    ]
    show(rows, ("kid", "name", "scopes", "state", "account_id", "created_at", "revoked_at"), as_json)


@eab.command("revoke")
@click.argument("kid")
@click.pass_context
def eab_revoke(ctx: click.Context, kid: str) -> None:
    """Revoke the EAB key KID: it binds no account any more, and the account it bound is
    deactivated (its certificates stay valid; revoke them apart if needed)."""
    key = services_of(settings_of(ctx)).acme_admin.revoke_eab(kid, actor().label)
    bound = f"; ACME account {key.account_id} is deactivated" if key.account_id is not None else ""
    click.echo(f"EAB key {key.kid} ({key.name}) revoked{bound}", err=True)


@main.group()
def acme() -> None:
    """ACME (RFC 8555) accounts."""


@acme.group("accounts")
def acme_accounts() -> None:
    """ACME accounts, each bound to one EAB key."""


@acme_accounts.command("list")
@json_option
@click.pass_context
def acme_accounts_list(ctx: click.Context, as_json: bool) -> None:
    """List ACME accounts: id, status, EAB key, scopes, certificates issued, contact, created."""
    items, _ = services_of(settings_of(ctx)).acme_admin.accounts()
    rows = [dataclasses.asdict(a) for a in items]
    show(rows, ("id", "status", "eab_name", "scopes", "certificates", "contact", "created_at"), as_json)


@acme_accounts.command("deactivate")
@click.argument("account_id", type=int)
@click.pass_context
def acme_accounts_deactivate(ctx: click.Context, account_id: int) -> None:
    """Deactivate ACME account ACCOUNT_ID (RFC 8555 section 7.3.6): its requests are refused
    from now on; its certificates stay valid."""
    services_of(settings_of(ctx)).acme_admin.deactivate(account_id, actor().label)
    click.echo(f"ACME account {account_id} is deactivated", err=True)
