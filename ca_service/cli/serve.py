"""`ca-service` serving, documents and the effective settings."""

from __future__ import annotations

import errno
import json
import os
import runpy
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import click

from ca_service.cli.base import (
    OUT_FILE,
    main,
    services_of,
    settings_of,
    upgrade_schema,
    write_out,
)
from ca_service.config import Settings, check_bind, label, masked_url
from ca_service.errors import CAError, Kind
from ca_service.issuers import lifecycle

# a file of the package, handed to gunicorn by path (see its docstring)
GUNICORN_CONF = Path(__file__).resolve().parents[1] / "gunicorn_conf.py"


def _bind_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (problem := check_bind(value)):
        raise click.BadParameter(f"{value!r}: {problem}.")
    return value


def gunicorn_environment(
    settings: Settings, bind: str | None = None, workers: int | None = None
) -> dict[str, str]:
    """The variables through which ``serve`` hands gunicorn (gunicorn_conf.py) what the
    settings say: home, bind address, workers (unset: gunicorn_conf.py's own default)."""
    env = {"CA_SERVICE_HOME": str(settings.home.resolve()), "CA_SERVICE_BIND": bind or settings.bind}
    if workers or settings.workers:
        env["CA_SERVICE_WORKERS"] = str(workers or settings.workers)
    return env


def check_free(bind: str, remedy: str) -> None:
    """Refuse to start when the address cannot be bound (another server holds it, a port below
    1024 without the right, an address of no interface); a Unix socket is gunicorn's to check.
    gunicorn would otherwise retry five times and give up with a traceback."""
    if bind.startswith("unix:"):
        return
    name, _, port = bind.rpartition(":")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            name.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            probe.bind(address)
    except OSError as exc:
        why = {
            errno.EADDRINUSE: "another program listens there (a running ca-service?)",
            errno.EACCES: "ports below 1024 need privileges this user does not have",
            errno.EADDRNOTAVAIL: "no network interface of this host has that address",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise CAError(
            Kind.UNAVAILABLE,
            f"Cannot listen on {bind}: {why}; {remedy}.",
        ) from exc


def metrics_folder(home: Path) -> Path:
    """A metrics folder of this server run, ``<home>/metrics/<pid>`` (gunicorn keeps the pid
    of ``serve``: it replaces this process). Folders of runs whose process is gone are
    deleted; those of a running server (another instance on the same home) are left alone."""
    parent = home / "metrics"
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in parent.iterdir():
        if folder.is_dir() and folder.name.isdigit() and not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = parent / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)  # left by a dead process that had this pid
    mine.mkdir(mode=0o700)
    return mine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@main.command()
@click.option(
    "--bind",
    default=None,
    callback=_bind_option,
    help="HOST:PORT, [IPv6]:PORT or unix:PATH (default: the bind setting, 127.0.0.1:8000).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="gunicorn workers (default: the workers setting, else 2 per CPU).",
)
@click.option(
    "--require-ca",
    is_flag=True,
    help="Refuse to start unless the database holds an active issuing CA; never create a "
    "development CA (production: migrations and init are separate steps).",
)
@click.pass_context
def serve(ctx: click.Context, bind: str | None, workers: int | None, require_ca: bool) -> None:
    """Run the service under gunicorn; on an empty home, set up a development CA first unless
    --require-ca is given."""
    settings = settings_of(ctx, "existing" if require_ca else "create")
    env = {**os.environ, **gunicorn_environment(settings, bind, workers)}
    elsewhere = "--bind" if bind else f"--bind or {label(settings, 'bind')}"
    check_free(env["CA_SERVICE_BIND"], f"stop the other server or choose another address with {elsewhere}")
    if not require_ca:
        upgrade_schema(settings)
    services = services_of(settings)
    try:
        if require_ca:
            lifecycle.require_active(services.db)
        elif token_file := services.bootstrap():
            click.echo(f"created a development CA in {settings.home}", err=True)
            click.echo(f"admin token written to {token_file.resolve()} (mode 0600)", err=True)
    finally:
        services.db.dispose()
    if "PROMETHEUS_MULTIPROC_DIR" not in env:  # one metrics folder per server run, summed by /metrics
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_folder(settings.home))
    click.echo(f"serving on http://{env['CA_SERVICE_BIND']} (API docs at /docs)", err=True)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "ca_service:create_app()"]
    os.execvpe(argv[0], argv, env)  # noqa: S606 - fixed argv, no shell


def openapi_document(settings: Settings) -> dict[str, Any]:
    from ca_service import create_app

    app = create_app(settings)
    return app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()  # type: ignore[no-any-return]


@main.command()
@click.option("--out", type=OUT_FILE, default=None, help="Write it to this file (default or '-': stdout).")
@click.pass_context
def openapi(ctx: click.Context, out: Path | None) -> None:
    """Print (or write) the OpenAPI document of the REST API."""
    text = json.dumps(openapi_document(settings_of(ctx, "optional")), indent=2, sort_keys=True) + "\n"
    write_out(out, text)


def _passphrase_source(settings: Settings) -> str:
    if settings.key_passphrase:
        return f"(set, from {label(settings, 'key_passphrase')})"
    return f"(unset: read from {settings.keys_dir.resolve() / 'passphrase'}, made there by the first init)"


@main.command("config")
@click.pass_context
def show_config(ctx: click.Context) -> None:
    """Print the settings in effect, as JSON: every setting (secrets masked), the database the
    service uses (password masked), the gunicorn bind address and workers that 'serve' starts,
    where the key passphrase comes from, and where each setting that is not at its default was
    set ('sources'). Needs no home: 'home_exists' says whether the home is there."""
    settings = settings_of(ctx, "optional")
    os.environ.update(gunicorn_environment(settings))
    gunicorn = runpy.run_path(str(GUNICORN_CONF))  # what gunicorn will read from that environment
    dump = settings.public_dump()
    dump.update(
        home=str(settings.home.resolve()),
        home_exists=settings.home.is_dir(),
        database_url=masked_url(settings.sqlalchemy_url),
        bind=gunicorn["bind"],
        workers=gunicorn["workers"],
        key_passphrase=_passphrase_source(settings),
        sources=dict(sorted(settings.sources.items())),
    )
    click.echo(json.dumps(dump, indent=2, default=str))
