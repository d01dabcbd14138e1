"""Fixtures: every test that touches the database runs on SQLite and on PostgreSQL.

PostgreSQL is the machine's server on 127.0.0.1:5432 (trust auth; override with
CA_SERVICE_TEST_PG). Each test session makes its own database and drops it at the end; each test
starts from empty tables. A PostgreSQL that cannot be reached fails the tests, it never skips them.

Markers (pyproject.toml): the PostgreSQL half of ``backend`` is marked ``postgres``; a test that
starts a server or a program other than openssl and the SoftHSM2 tools must be marked ``slow``
(the ``_slow_lane_guard`` fixture fails it otherwise). ``make test-fast`` deselects both.

The CA of the ``services`` fixture is made once per session and backend (``ca_template``) and
copied into each test: the home folder with its keys, and the database rows.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.pool import NullPool

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


def _empty_pg(engine: Engine) -> None:
    """Every table emptied and every sequence restarted, in one statement (several times faster
    than TRUNCATE on tables this small)."""
    with engine.begin() as conn:
        sequences = conn.execute(
            text("SELECT sequence_schema || '.' || sequence_name FROM information_schema.sequences")
        ).scalars()
        statements = [f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables)]
        statements += [f"ALTER SEQUENCE {name} RESTART" for name in sequences]
        conn.exec_driver_sql("; ".join(statements))


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """The fixtures' own connection pool to the session database (tests use their own)."""
    engine = create_engine(pg_url, poolclass=NullPool)
    yield engine
    engine.dispose()


# Programs a test may start without being marked slow: quick one-shot tools that cross-check
# artefacts (openssl) or set up a SoftHSM2 token. A server, a CLI subprocess or a client such as
# lego makes a test slow.
FAST_LANE_PROGRAMS = {"openssl", "softhsm2-util", "pkcs11-tool"}


@pytest.fixture(autouse=True)
def _slow_lane_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the ``slow`` marker accurate: a test without it that starts any other program fails
    and says so (the program still runs for real in every test that is marked)."""
    if request.node.get_closest_marker("slow") is not None:
        return
    real_init = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        first = args[0] if isinstance(args, list | tuple) else str(args).split()[0]
        program = Path(str(first)).name
        if program not in FAST_LANE_PROGRAMS:
            pytest.fail(f"this test starts {program}: mark it pytest.mark.slow", pytrace=False)
        real_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the PostgreSQL half of ``backend`` (also where a test picks it with an indirect
    parametrisation), so that ``-m "not postgres"`` leaves it out."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "postgresql":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgresql":
        request.getfixturevalue("ca_template_postgresql")  # made before this test's tables are emptied
        _empty_pg(request.getfixturevalue("pg_engine"))
        return str(request.getfixturevalue("pg_url"))
    template = request.getfixturevalue("sqlite_template")
    path = tmp_path / "ca.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


# Key sealing at the test-only minimal KDF cost: the wrapping key's scrypt (about 0.1 s per
# derivation, two at init and one in every process that opens it) was 15% of the fast lane.
# Tests of the standard cost build their Settings without these.
TEST_KDF = {"kdf_cost": "minimal", "test_only_settings": True}


def base_settings(**overrides: Any) -> Settings:
    """The settings every test starts from (the machine's CA_SERVICE_* environment is ignored):
    ``home`` and ``database_url`` are given, the public URL is http://ca.test, keys are sealed at
    the minimal KDF cost."""
    return load_settings(environ={}, **{"public_url": PUBLIC_URL, **TEST_KDF, **overrides})


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return base_settings(**{"home": tmp_path / "home", "database_url": database_url, **overrides})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def _where_it_lives(settings: Settings) -> Settings:
    return dataclasses.replace(settings, home=Path("."), database_url="")


@dataclass(frozen=True)
class CaTemplate:
    """A CA made by ``ca_setup.initialize`` once: its home folder (keys, passphrase, wrapping key)
    and its database (a SQLite file, or the rows of every table for PostgreSQL)."""

    settings: Settings
    sqlite_file: Path | None
    rows: dict[str, list[dict[str, Any]]]

    def fits(self, settings: Settings) -> bool:
        """Whether ``settings`` would have made this very CA: all settings equal but where it
        lives (a profile, a pkcs11 wrapping key, anything else makes a fresh CA)."""
        return _where_it_lives(settings) == _where_it_lives(self.settings)

    def copy_to(self, settings: Settings, engine: Engine | None) -> None:
        shutil.copytree(self.settings.home, settings.home)
        if self.sqlite_file is not None:
            shutil.copyfile(self.sqlite_file, settings.database_url.removeprefix("sqlite:///"))
            return
        assert engine is not None
        with engine.begin() as conn:  # the tables are empty (database_url), sequences restarted
            for table in Base.metadata.sorted_tables:
                if self.rows[table.name]:
                    conn.execute(table.insert(), self.rows[table.name])
                    if "id" in table.c:
                        top = conn.scalar(select(func.max(table.c.id)))
                        sequence = f"pg_get_serial_sequence('{table.name}', 'id')"
                        conn.execute(text(f"SELECT setval({sequence}, {top})"))


def _make_template(where: Path, database_url: str) -> CaTemplate:
    settings = base_settings(home=where / "home", database_url=database_url)
    svc = build_services(settings)
    ca_setup.initialize(svc.db, settings)
    with svc.db.read() as session:
        tables = Base.metadata.sorted_tables
        rows = {t.name: [dict(r) for r in session.execute(select(t)).mappings()] for t in tables}
    sqlite_file = None
    if svc.db.dialect == "postgresql":
        _empty_pg(svc.db.engine)  # the session database is every test's: leave it empty
    svc.db.dispose()
    if svc.db.dialect == "sqlite":
        sqlite_file = Path(database_url.removeprefix("sqlite:///"))
        # the last connection closed checkpoints the WAL: the main file holds everything
        assert not sqlite_file.with_name(sqlite_file.name + "-wal").exists()
    return CaTemplate(settings, sqlite_file, rows)


@pytest.fixture(scope="session")
def ca_template_sqlite(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> CaTemplate:
    where = tmp_path_factory.mktemp("ca-template-sqlite")
    shutil.copyfile(sqlite_template, where / "ca.db")
    return _make_template(where, f"sqlite:///{where / 'ca.db'}")


@pytest.fixture(scope="session")
def ca_template_postgresql(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> CaTemplate:
    return _make_template(tmp_path_factory.mktemp("ca-template-postgresql"), pg_url)


@pytest.fixture
def services(settings: Settings, backend: str, request: pytest.FixtureRequest) -> Iterator[Services]:
    """Services on an initialised CA (P-384 root, P-256 issuing in the file key store): a copy of
    the session's CA template when the settings fit it, else one made by ``initialize``. A test
    that needs a CA of its own (other key types, an external root) calls initialize itself."""
    template: CaTemplate = request.getfixturevalue(f"ca_template_{backend}")
    if template.fits(settings):
        engine = request.getfixturevalue("pg_engine") if backend == "postgresql" else None
        template.copy_to(settings, engine)
        svc = build_services(settings)
    else:
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
        "CA_SERVICE_KDF_COST": settings.kdf_cost,
        "CA_SERVICE_TEST_ONLY_SETTINGS": str(settings.test_only_settings).lower(),
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
