"""`ca-service` serving and documents."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from ca_service.cli.base import (
    main,
    services_of,
    settings_of,
    upgrade_schema,
)
from ca_service.config import Settings
from ca_service.issuers import lifecycle

# a file of the package, handed to gunicorn by path (see its docstring)
GUNICORN_CONF = Path(__file__).resolve().parents[1] / "gunicorn_conf.py"


@main.command()
@click.option("--bind", default=None, help="host:port (default from settings, 127.0.0.1:8000).")
@click.option("--workers", type=int, default=None, help="gunicorn workers (default 2 x CPUs).")
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
    settings = settings_of(ctx)
    if not require_ca:
        upgrade_schema(settings)
    services = services_of(settings)
    try:
        if require_ca:
            lifecycle.require_active(services.db)
        elif token_file := services.bootstrap():
            click.echo(f"created a development CA in {settings.home.resolve()}", err=True)
            click.echo(f"admin token written to {token_file.resolve()} (mode 0600)", err=True)
    finally:
        services.db.dispose()
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


def openapi_document(settings: Settings) -> dict[str, Any]:
    from ca_service import create_app

    app = create_app(settings)
    return app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()  # type: ignore[no-any-return]


@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_context
def openapi(ctx: click.Context, out: Path | None) -> None:
    """Print (or write) the OpenAPI document."""
    text = json.dumps(openapi_document(settings_of(ctx)), indent=2, sort_keys=True) + "\n"
    if out:
        out.write_text(text)
    else:
        click.echo(text, nl=False)


@main.command("config")
@click.pass_context
def show_config(ctx: click.Context) -> None:
    """Print the effective settings (secrets masked)."""
    click.echo(json.dumps(settings_of(ctx).public_dump(), indent=2, default=str))


if __name__ == "__main__":
    main()
