"""Two instances started at the same moment on an empty database: one migrates and creates the
(development) CA, the other waits and starts with that CA; no traceback, one CA."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import create_engine, func, select

from ca_service.store.models import IssuerRow
from tests.conftest import PG_ADMIN
from tests.helpers import REPO, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema): a new SQLite file both instances share, or a new
    PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared' / 'ca.db'}"
        return
    name = f"ca_race_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_instances_start_at_once_on_an_empty_database(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    procs, urls = [], []
    for n in range(2):  # each "host" has its own home; they share the database
        port = free_port()
        env = {
            **os.environ,
            "CA_SERVICE_HOME": str(tmp_path / f"home-{n}"),
            "CA_SERVICE_DATABASE_URL": empty_database,
            "CA_SERVICE_KEY_PASSPHRASE": "race-test-passphrase-0123456789",  # both read the keys
            "CA_SERVICE_WORKERS": "1",
            "CA_SERVICE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ca_service.cli", "serve", "--bind", f"127.0.0.1:{port}"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 90
        ready = set()
        while len(ready) < 2:
            for url, proc in zip(urls, procs, strict=True):
                assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
                try:
                    if requests.get(url + "/ca/root.pem", timeout=1).status_code == 200:
                        ready.add(url)
                except requests.RequestException:
                    pass
            assert time.monotonic() < deadline, "the instances did not both start"
            time.sleep(0.2)
        roots = {requests.get(url + "/ca/root.pem", timeout=5).text for url in urls}
        assert len(roots) == 1  # both serve the one CA
    finally:
        outputs = []
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            outputs.append(proc.communicate(timeout=30)[0].decode())
    engine = create_engine(empty_database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(IssuerRow)) == 2  # one root, one issuing
    engine.dispose()
    for text in outputs:
        assert "Traceback" not in text and "IntegrityError" not in text, text[-3000:]
    made = [text for text in outputs if "created a development CA" in text]
    assert len(made) == 1
