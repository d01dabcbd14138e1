"""What every `ca-service` command group shares: the root group, settings, services, the
command-line principal and the option types that several commands take."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ca_service import __version__
from ca_service.config import Settings, load_settings
from ca_service.domain import KeyType, Principal, Role
from ca_service.errors import CAError

if TYPE_CHECKING:
    from ca_service import Services

# CA keys: RSA-2048 is below what a CA key should be, so it is not offered here
CA_KEY_TYPE = click.Choice([k.value for k in KeyType if k is not KeyType.RSA_2048])


def settings_of(ctx: click.Context) -> Settings:
    return ctx.obj if isinstance(ctx.obj, Settings) else load_settings()


def services_of(settings: Settings) -> Services:
    from ca_service import build_services

    return build_services(settings)


def actor() -> Principal:
    """The admin principal of a command-line user (the CLI runs with the service's own rights)."""
    return Principal(name=f"cli:{os.environ.get('USER', 'root')}", role=Role.ADMIN)


def upgrade_schema(settings: Settings) -> None:
    from ca_service.store.migrate import upgrade

    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(settings.sqlalchemy_url)


def publish_first_crl(services: Services) -> None:
    """A new issuing CA publishes its (empty) CRL at once: relying parties that check CRLs
    (nginx ssl_crl) need one before the first revocation, and /healthz wants it."""
    services.revocation.publish_due()


class CAErrorGroup(click.Group):
    """Turns a CAError of any command into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CAError as exc:
            click.echo(f"error: {exc.detail}", err=True)
            sys.exit(1)


@click.group(cls=CAErrorGroup)
@click.version_option(__version__, prog_name="ca-service")
@click.pass_context
def main(ctx: click.Context) -> None:
    """ca-service: a private CA for device client certificates (CN = device MAC)."""
    ctx.obj = load_settings()
