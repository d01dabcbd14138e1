"""SQLite's locks are POSIX (fcntl) locks, which a process loses on *every* file descriptor of the
database when it closes *any* one of them. Nothing of ours may open and close the database file
while the process may hold SQLite's locks on it: checked by holding a write transaction, doing what
a second Database or the start-up lock does, and asking another process for the write lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from ca_service.store.db import Database, exclusive, private_sqlite_files

TRY_WRITE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    conn.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print("locked" if "locked" in str(exc) else str(exc))
else:
    print("acquired")
"""


def other_process_writes(path: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", TRY_WRITE, str(path)], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


@pytest.mark.slow  # another python process
@pytest.mark.parametrize("step", ["second database", "start-up lock"])
def test_our_file_handling_keeps_sqlites_locks(tmp_path: Path, step: str) -> None:
    path = tmp_path / "ca.db"
    url = f"sqlite:///{path}"
    db = Database(url)
    try:
        with db.write() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
        with db.write() as session:  # holds the write lock until the block ends
            session.execute(text("INSERT INTO t VALUES (1)"))
            assert other_process_writes(path) == "locked"
            if step == "second database":
                private_sqlite_files(url)
                Database(url).dispose()
            else:
                with exclusive(url, "schema"):
                    pass
            assert other_process_writes(path) == "locked"
    finally:
        db.dispose()
