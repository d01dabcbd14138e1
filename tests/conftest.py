"""Fixtures: every test that touches the database runs on SQLite and on PostgreSQL.

PostgreSQL is the machine's server on 127.0.0.1:5432 (trust auth; override with
CA_SERVICE_TEST_PG). Each test session makes its own database and drops it at the end; each test
starts from empty tables. A PostgreSQL that cannot be reached fails the tests, it never skips them.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from ca_service import Services, build_services, create_app
from ca_service.config import Settings, load_settings
from ca_service.enrollment.tokens import create_token
from ca_service.issuers import lifecycle as ca_setup
from ca_service.store.migrate import upgrade
from ca_service.store.models import Base
from tests.helpers import LiveServer
from tests.softhsm import SoftHsm, Token, require_softhsm

PG_ADMIN = os.environ.get("CA_SERVICE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PUBLIC_URL = "http://ca.test"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"ca_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # fail, never skip
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://")
    upgrade(url)
    yield url
    create_engine(url).dispose()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _truncate_pg(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgresql":
        url = str(request.getfixturevalue("pg_url"))
        _truncate_pg(url)
        return url
    template = request.getfixturevalue("sqlite_template")
    path = tmp_path / "ca.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "database_url": database_url,
            "public_url": PUBLIC_URL,
        }
        values.update(overrides)
        return load_settings(environ={}, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """Services on a freshly initialised CA (P-384 root, P-256 issuing in the file key store)."""
    svc = build_services(settings)
    ca_setup.initialize(svc.db, settings)
    yield svc
    svc.db.dispose()


@pytest.fixture
def app(settings: Settings, services: Services) -> Iterator[Flask]:
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["ca_service"].db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def token(services: Services) -> Callable[..., dict[str, str]]:
    """Make a token and return the Authorization header for it."""

    def make(role: str = "admin", *scopes: str, name: str | None = None) -> dict[str, str]:
        value = create_token(
            services.db, name=name or f"{role}-{secrets.token_hex(3)}", role=role, scopes=scopes
        )
        return {"Authorization": f"Bearer {value}"}

    return make


@pytest.fixture
def admin(token: Callable[..., dict[str, str]]) -> dict[str, str]:
    return token("admin")


@pytest.fixture
def env_for(settings: Settings) -> dict[str, str]:
    """Environment that makes a subprocess (gunicorn, the CLI) use this test's settings."""
    return {
        "CA_SERVICE_HOME": str(settings.home),
        "CA_SERVICE_DATABASE_URL": settings.database_url,
        "CA_SERVICE_PUBLIC_URL": settings.public_url,
    }


# -- key stores (issue 3): the conformance suite runs every backend -------------------------------
@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """SoftHSM2 with its tokens in a temporary folder. SOFTHSM2_CONF is set for the whole test
    process (the PKCS#11 library reads it when initialised) and for the servers it starts."""
    module = require_softhsm()
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"), module)
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    yield hsm
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(params=["file", "pkcs11"])
def keystore_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def key_uri(keystore_kind: str, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make the URI of a new key named ``name`` in this test's key store (a fresh SoftHSM2 token
    per test for pkcs11)."""
    if keystore_kind == "file":
        return lambda name: f"file:keys/{name}.pem"
    return request.getfixturevalue("hsm_token").uri  # type: ignore[no-any-return]


@pytest.fixture
def hsm_token(softhsm: SoftHsm, tmp_path: Path) -> Token:
    """A fresh SoftHSM2 token for this test; its user PIN is in ``tmp_path/pin``."""
    return softhsm.new_token(tmp_path / "pin")


@pytest.fixture
def live(services: Services, env_for: dict[str, str]) -> Iterator[LiveServer]:
    """The service under gunicorn (2 workers) on this test's database and CA; its public URL is
    its own address, so stock clients can follow the AIA (OCSP) and CRL URLs it issues."""
    server = LiveServer(env_for, workers=2).start()
    yield server
    server.stop()
