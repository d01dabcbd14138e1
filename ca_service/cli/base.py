"""What every `ca-service` command group shares: the root group and how it reports failures,
settings and the service home, services, the command-line principal, output (files or stdout,
tables or JSON) and the option types that several commands take."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from ca_service import __version__
from ca_service.config import Settings, label, load_settings, unknown_variables
from ca_service.domain import KeyType, Principal, Role
from ca_service.errors import CAError, Kind
from ca_service.store.db import DatabaseUnavailable

if TYPE_CHECKING:
    from ca_service import Services

# CA keys: RSA-2048 is below what a CA key should be, so it is not offered here
CA_KEY_TYPE = click.Choice([k.value for k in KeyType if k is not KeyType.RSA_2048])
# where a command writes: a file, or stdout for "-"
OUT_FILE = click.Path(dir_okay=False, allow_dash=True, path_type=Path)
DEFAULT_HOME = Path("var")
NO_HOME = (
    "No service home: set CA_SERVICE_HOME to the service's folder (or 'home' in the file "
    "CA_SERVICE_CONFIG names), or run ca-service in the folder that holds ./var."
)

HomeNeed = Literal["existing", "create", "optional"]


def settings_of(ctx: click.Context, home: HomeNeed = "existing") -> Settings:
    """The settings of this run (loaded once) with the service home found: CA_SERVICE_HOME,
    else the config file's ``home``, else ``./var`` if it exists, else a CAError that says
    so. ``home`` is what the command needs: an ``existing`` home, one it may ``create``
    (init, serve, db upgrade: made and checked for writing here), or ``optional`` (documents,
    the config dump)."""
    root = ctx.find_root()
    settings = root.obj if isinstance(root.obj, Settings) else load_settings()
    root.obj = settings
    set_anywhere = "home" in settings.sources
    if home == "optional":
        return settings
    if not set_anywhere and not DEFAULT_HOME.is_dir():
        raise CAError(Kind.MALFORMED, NO_HOME)
    settings = dataclasses.replace(settings, home=settings.home.resolve())
    root.obj = settings
    _refuse_foreign_home(settings, ctx)
    if home == "create":
        _prepare_home(settings)
    elif not settings.home.is_dir():
        raise CAError(
            Kind.MALFORMED,
            f"{label(settings, 'home')} = {settings.home} is not a folder; run 'ca-service init' "
            "(or 'ca-service serve') to create the CA there, or point it at the service's folder.",
        )
    return settings


def _refuse_foreign_home(settings: Settings, ctx: click.Context) -> None:
    """Refuse root on a home that another user owns (the service's user, as the systemd unit
    and the image run it): what a command writes there, a rotated CA key, a CRL file, the
    database's journal or lock file, would be root's, and the service could not read it. The
    command must run as that user (``runuser -u <owner> --``), as the README's deployment does."""
    if os.geteuid() != 0:
        return
    try:
        owner = settings.home.stat().st_uid
    except OSError:  # not there yet: made by this user
        return
    if owner == 0:
        return
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    raise CAError(
        Kind.FORBIDDEN,
        f"ca-service runs as root, but {label(settings, 'home')} = {settings.home} belongs to "
        f"user {name}: what this command writes there (CA keys, CRL files, the database's "
        f"journal) would be root's, and the service could not read it. Run the command as that user: "
        f"runuser -u {name} -- {ctx.command_path} (with its arguments).",
    )


def _prepare_home(settings: Settings) -> None:
    """Create the home folder (0700) if missing and make sure this user can write in it."""
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryFile(dir=home):
            pass
    except OSError as exc:
        reason = "it is a file, not a folder" if home.is_file() else (exc.strerror or str(exc)).lower()
        raise CAError(
            Kind.MALFORMED,
            f"{label(settings, 'home')} = {home} cannot be used ({reason}); point it at a folder "
            "this user can create and write.",
        ) from exc


def services_of(settings: Settings) -> Services:
    from ca_service import build_services

    return build_services(settings)


def actor() -> Principal:
    """The admin principal of a command-line user (the CLI runs with the service's own rights)."""
    return Principal(name=f"cli:{os.environ.get('USER', 'root')}", role=Role.ADMIN)


def upgrade_schema(settings: Settings) -> None:
    """Migrate the database to the newest schema (the home must have been prepared)."""
    from ca_service.store.migrate import upgrade

    upgrade(settings.sqlalchemy_url)


def publish_first_crl(services: Services) -> None:
    """A new issuing CA publishes its (empty) CRL at once: relying parties that check CRLs
    (nginx ssl_crl) need one before the first revocation, and /healthz wants it."""
    services.revocation.publish_due()


# -- output ------------------------------------------------------------------------------------
def write_out(path: Path | None, text: str) -> bool:
    """Write ``text`` to ``path``, or to stdout when ``path`` is None or ``-``. Returns whether
    a file was written (the caller then says so on stderr)."""
    if path is None or str(path) == "-":
        click.echo(text, nl=False)
        return False
    path.write_text(text)
    return True


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _cell(value: object) -> str:
    """A table cell: None as '-', datetimes as UTC ISO 8601, tuples joined by commas; control
    characters (from names that clients chose) escaped, never sent to the terminal."""
    if value is None or value == "" or value == ():
        return "-"
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(value, list | tuple):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def show(rows: Sequence[Mapping[str, object]], columns: Sequence[str], as_json: bool) -> None:
    """Print ``rows`` as a table with a header row (``columns``, in order) or, with
    ``as_json``, as one JSON array of objects with every key of the rows."""
    if as_json:
        click.echo(json.dumps([{k: _plain(v) for k, v in row.items()} for row in rows]))
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    header = [c.upper().replace("_", " ") for c in columns]
    widths = [max(len(x) for x in column) for column in zip(header, *cells, strict=False)]
    for line in (header, *cells):
        click.echo("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


def json_line(row: Mapping[str, object]) -> str:
    """One JSON object on one line (JSON lines export)."""
    return json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True)


# -- the root group --------------------------------------------------------------------------
def _database_reason(exc: BaseException) -> str:
    """The first line of what the database driver said under a DatabaseUnavailable."""
    cause: BaseException | None = exc
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(getattr(cause, "orig", None) or cause or "").strip()
    return text.splitlines()[0].rstrip(".") if text else "no answer"


def _explain(exc: CAError, ctx: click.Context) -> str:
    """The one line a failure prints. A database that cannot be used is named (password
    masked) with what its driver said and the setting to check."""
    if not isinstance(exc, DatabaseUnavailable) or not isinstance(ctx.obj, Settings):
        return exc.detail
    from sqlalchemy import make_url

    settings = ctx.obj
    where = make_url(settings.database_url or settings.sqlalchemy_url).render_as_string(hide_password=True)
    check = (
        f"{label(settings, 'database_url')} and that the database server runs"
        if settings.database_url
        else f"that {label(settings, 'home')} is the service's folder"
    )
    return f"{exc.detail} {where}: {_database_reason(exc)}. Check {check}."


class CAErrorGroup(click.Group):
    """Reports any failure of a command as one ``error:`` line on stderr and exit status 1: a
    CAError by its sentence, anything else by its type and message. ``--debug`` shows the
    traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            if isinstance(exc, CAError):
                line = _explain(exc, ctx)
            else:
                first = (str(exc).strip().splitlines() or [""])[0]
                line = f"unexpected {type(exc).__name__}: {first} (run with --debug for the traceback)"
            click.echo(f"error: {line}", err=True)
            sys.exit(1)


@click.group(cls=CAErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="ca-service")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure instead of one line.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """ca-service: a private CA for device client certificates (CN = device MAC).

    Settings come from CA_SERVICE_* variables and the TOML file CA_SERVICE_CONFIG names;
    the service home is CA_SERVICE_HOME (or ./var where it exists). 'ca-service config'
    shows what is in use."""
    for warning in unknown_variables():
        click.echo(f"warning: {warning}", err=True)
