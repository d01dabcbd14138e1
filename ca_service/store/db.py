"""Engines and sessions (design decisions 8 and 10).

SQLite runs in WAL mode with ``synchronous=NORMAL``; write transactions begin IMMEDIATE so that
concurrent gunicorn workers queue for the write lock instead of failing with "database is locked"
(shared/measurements.md). Reads use a separate engine whose transactions stay deferred. Its
files are 0600. Engines never put statement parameters (tokens, sealed keys) into logs or error
messages (``hide_parameters``).

Every call is bounded (:class:`Bounds`): connecting, waiting for a pooled connection, each
statement, each lock wait, and a link that stops answering (TCP keepalives and
``tcp_user_timeout`` on PostgreSQL; the busy timeout on SQLite). A peer that accepts bytes and
never answers (a stalled proxy, a frozen server) defeats all of those, so a request's whole
transaction also runs under a wall-clock alarm (``transaction``) while a web request is served
(:func:`serving_requests`; the main thread of a sync worker, where requests run); CLI jobs and
the CRL publisher's long reads are bounded by the statement timeout instead. A breached bound
is a ``CAError(UNAVAILABLE)``: a 503 problem with Retry-After, never a hang; SQLAlchemy drops a
connection interrupted that way.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Executable, Row, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from ca_service.errors import CAError, Kind


@dataclass(frozen=True)
class Bounds:
    """How long any database call may take, in seconds."""

    connect: float = 2.0
    statement: float = 5.0
    lock: float = 2.0
    pool: float = 2.0
    link: float = 2.0  # a silent peer: unacknowledged data, or no keepalive answer
    transaction: float = 4.0  # wall clock of one whole transaction in a request
    pause: float = 2.0  # after a failure, calls fail at once for this long, then one probes again


class DatabaseUnavailable(CAError):
    """The database itself failed or did not answer in time (not a refusal of ours)."""

    def __init__(self, detail: str) -> None:
        super().__init__(Kind.UNAVAILABLE, detail)


def private_sqlite_files(url: str) -> None:
    """Make an SQLite database file and its ``-wal``/``-shm`` companions readable by the owner
    only (0600), whatever the umask or the mode of a home folder made beforehand: they hold
    sealed keys, token hashes and the audit log. SQLite gives new companions the database
    file's mode, so fixing that file first covers them. A missing folder is left to SQLite.

    The database file is never opened here once it exists: SQLite's locks are POSIX locks, and
    closing any descriptor of the file would drop the ones this process holds on it."""
    database = make_url(url).database
    if not database or database == ":memory:" or not Path(database).parent.is_dir():
        return
    path = Path(database)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    except FileExistsError:
        pass
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.chmod(0o600)


def _sqlite_engine(url: str, immediate: bool, bounds: Bounds) -> Engine:
    busy_ms = int(bounds.lock * 1000)
    engine = create_engine(
        url, connect_args={"timeout": bounds.lock}, pool_timeout=bounds.pool, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_COMMITTED = "ca_service_committed"


def on_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run ``hook`` once the transaction of ``session`` (a :meth:`Database.write`) committed;
    never when it rolled back."""
    session.info.setdefault(_COMMITTED, []).append(hook)


class Database:
    """The service's database: ``read()`` and ``write()`` give sessions in a transaction."""

    def __init__(self, url: str, bounds: Bounds | None = None) -> None:
        self.url = url
        self.bounds = bounds = bounds or Bounds()
        if url.startswith("sqlite"):
            private_sqlite_files(url)
            self.engine = _sqlite_engine(url, immediate=False, bounds=bounds)
            self.write_engine = _sqlite_engine(url, immediate=True, bounds=bounds)
        else:
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                pool_timeout=bounds.pool,
                connect_args=_postgresql_bounds(bounds),
                hide_parameters=True,
            )
            self.write_engine = self.engine
        self._paused_until = 0.0
        # one statement needs no transaction of its own on PostgreSQL (it is one snapshot, and
        # nothing is left to roll back); SQLite's read connections keep their deferred BEGIN
        sqlite = url.startswith("sqlite")
        self._lookups = self.engine if sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._guarded(), self._read() as session, session.begin():
            yield session

    def lookup(self, statement: Executable, params: dict[str, Any]) -> Row[Any] | None:
        """The first row of one read-only Core statement, on a pooled connection without a
        Session: the cheapest read, for the hot path (the bearer token of every API request).
        Bounded as :meth:`read`."""
        with self._guarded(), self._lookups.connect() as conn:
            return conn.execute(statement, params).first()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends without an exception; then the
        callables given to :func:`on_commit` in it run."""
        with self._guarded(), self._write() as session:
            with session.begin():
                yield session
            for hook in session.info.get(_COMMITTED, ()):
                hook()

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Bound the transaction; after the database failed, fail at once for
        ``bounds.pause`` seconds (a worker does not queue every request behind a dead link),
        then let the next call probe it again."""
        if time.monotonic() < self._paused_until:
            raise DatabaseUnavailable("The database is not available; try again shortly.")
        try:
            with _bounded(self.bounds.transaction if _IN_REQUEST.get() else 0), _unavailable_as_caerror():
                yield
        except DatabaseUnavailable:
            self._paused_until = time.monotonic() + self.bounds.pause
            raise

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


@contextmanager
def exclusive(url: str, name: str, wait: float = 120.0) -> Iterator[None]:
    """Hold a lock called ``name`` for the block, across every process and host that shares the
    database at ``url``: a PostgreSQL advisory lock (session level, on a connection of its own),
    or an flock on ``<database>.lock`` beside an SQLite file (never the database file itself:
    closing a descriptor of it would drop the POSIX locks SQLite holds in this process). Waits up
    to ``wait`` seconds, then UNAVAILABLE. Start-up steps that must not run twice at once
    (migrations, creating the CA) take it, one after the other."""
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "ca.db")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_name(path.name + ".lock")
        with open(os.open(lock, os.O_CREAT | os.O_RDWR, 0o600), "r+") as fh:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DatabaseUnavailable(
                            f"Another process holds the {name} lock; try again."
                        ) from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    key = zlib.crc32(name.encode()) & 0x7FFFFFFF
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SET lock_timeout = {int(wait * 1000)}"))
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"The {name} lock could not be taken: the database is not available."
        ) from exc
    finally:
        engine.dispose()


_IN_REQUEST: ContextVar[bool] = ContextVar("ca_service_in_request", default=False)


@contextmanager
def serving_requests() -> Iterator[None]:
    """Mark the enclosed work as a web request: its transactions get the wall-clock bound."""
    token = _IN_REQUEST.set(True)
    try:
        yield
    finally:
        _IN_REQUEST.reset(token)


class _Deadline(BaseException):
    """The alarm of :func:`_bounded`. Not an ``Exception``: SQLAlchemy then invalidates the
    interrupted connection instead of talking to it again."""


@contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    """Run the block under a SIGALRM deadline (main thread only; an outer bound wins). Any
    failure after the deadline fired is UNAVAILABLE."""
    if (
        not seconds
        or threading.current_thread() is not threading.main_thread()
        or signal.getitimer(signal.ITIMER_REAL)[0]
    ):
        yield
        return
    state = {"fired": False, "done": False}

    def alarm(_signum: int, _frame: object) -> None:
        if not state["done"]:
            state["fired"] = True
            raise _Deadline

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
        state["done"] = True
    except BaseException as exc:
        state["done"] = True
        if state["fired"]:
            raise DatabaseUnavailable("The database did not answer in time; try again shortly.") from exc
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _postgresql_bounds(bounds: Bounds) -> dict[str, Any]:
    """libpq connection parameters: a connect timeout, server-side statement and lock timeouts,
    and a dead link detected within a few seconds (keepalives for an idle wait, a user timeout
    for unacknowledged data), so a blackholed network cannot hold a request."""
    statement, lock = int(bounds.statement * 1000), int(bounds.lock * 1000)
    return {
        "connect_timeout": max(1, round(bounds.connect)),
        "options": f"-c statement_timeout={statement} -c lock_timeout={lock}",
        "keepalives": 1,
        "keepalives_idle": 1,
        "keepalives_interval": 1,
        "keepalives_count": max(1, round(bounds.link)),
        "tcp_user_timeout": int(bounds.link * 1000),
    }


@contextmanager
def _unavailable_as_caerror() -> Iterator[None]:
    try:
        yield
    except (OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailable("The database is not available; try again shortly.") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable("The database connection was lost; try again.") from exc
        raise
