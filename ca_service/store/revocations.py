"""Revocation state: revoking certificate rows, the revocations each CRL still misses, and the
per-issuer CRL row (numbers, lease, stored bytes). Every counter and lock here is a database row,
so workers and hosts agree; a revoking transaction only updates its certificate and inserts its
pending row, so it never waits for another host's transaction on a shared counter."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, delete, func, insert, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ca_service.store.models import CertificateRow, CrlDataRow, CrlPendingRow, CrlRow, IssuerRow

STREAM_ROWS = 20_000
DELETE_CHUNK = 1_000
CORE = {"synchronize_session": False}


def mark_revoked(
    session: Session, serial: str, at: datetime, reason: str, invalidity: datetime | None = None
) -> bool:
    """Flip a valid certificate to revoked and count the revocation against its issuer's CRL,
    in the caller's transaction: every path that revokes (REST, CLI, ACME, superseded) gets its
    CRL regenerated. False when it was not valid any more (a concurrent revocation won: the
    WHERE clause is re-checked under the row lock)."""
    issuer_id = session.execute(
        update(CertificateRow)
        .where(CertificateRow.serial == serial, CertificateRow.status == "valid")
        .values(status="revoked", revoked_at=at, revocation_reason=reason, invalidity_date=invalidity)
        .returning(CertificateRow.issuer_id),
        execution_options={"synchronize_session": False},
    ).scalar_one_or_none()
    if issuer_id is None:
        return False
    add_pending(session, issuer_id, serial, at)
    return True


def add_pending(session: Session, issuer_id: int, serial: str, at: datetime) -> None:
    """Count a revocation against the CRL of ``issuer_id`` (a device certificate under an issuing
    CA, or an issuing CA under our root): its publisher regenerates that CRL."""
    session.execute(insert(CrlPendingRow).values(issuer_id=issuer_id, serial=serial, revoked_at=at))


def ensure_crl_row(session: Session, issuer_id: int) -> None:
    values = {"issuer_id": issuer_id, "number": 0, "entries": 0}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(CrlRow).values(**values).on_conflict_do_nothing())


@dataclass(frozen=True)
class CrlState:
    """One issuer's CRL as published, and the revocations it still misses."""

    issuer_id: int
    published_number: int | None
    entries: int
    this_update: datetime | None
    next_update: datetime | None
    pending: int = 0
    oldest_pending: datetime | None = None  # when the longest-waiting revocation was made


def crl_states(session: Session, issuer_id: int | None = None) -> dict[int, CrlState]:
    """CRL states by issuer id (one issuer, or all), without the CRL bytes."""
    rows = select(
        CrlRow.issuer_id, CrlRow.published_number, CrlRow.entries, CrlRow.this_update, CrlRow.next_update
    )
    waiting = select(CrlPendingRow.issuer_id, func.count(), func.min(CrlPendingRow.revoked_at)).group_by(
        CrlPendingRow.issuer_id
    )
    if issuer_id is not None:
        rows, waiting = (
            rows.where(CrlRow.issuer_id == issuer_id),
            waiting.where(CrlPendingRow.issuer_id == issuer_id),
        )
    pending = {r[0]: (int(r[1]), r[2]) for r in session.execute(waiting)}
    states = {r[0]: CrlState(*r, *pending.pop(r[0], (0, None))) for r in session.execute(rows)}
    for missing, (count, oldest) in pending.items():  # revoked before any CRL row existed
        states[missing] = CrlState(missing, None, 0, None, None, count, oldest)
    return states


def pending_ids(session: Session, issuer_id: int) -> list[int]:
    """The pending revocations of ``issuer_id`` that are committed now. Read them before the
    CRL's entries: each one's certificate row is then in the entries, and a revocation that
    commits in between stays pending for the next CRL."""
    return list(session.scalars(select(CrlPendingRow.id).where(CrlPendingRow.issuer_id == issuer_id)))


def published_crl(session: Session, issuer_id: int, with_der: bool = True) -> Any:
    """(number, this_update, next_update, der) of the published CRL, or None; without its
    bytes (``der`` None) unless ``with_der``."""
    der = CrlDataRow.der if with_der else null().label("der")
    return session.execute(
        select(CrlDataRow.number, CrlDataRow.this_update, CrlDataRow.next_update, der).where(
            CrlDataRow.issuer_id == issuer_id
        )
    ).first()


def renew_lease(session: Session, issuer_id: int, owner: str, until: datetime) -> bool:
    """Extend a held lease (the heartbeat of a long build); False when it was lost."""
    result = session.execute(
        update(CrlRow)
        .where(CrlRow.issuer_id == issuer_id, CrlRow.lease_owner == owner)
        .values(lease_until=until)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def take_lease(session: Session, issuer_id: int, owner: str, now: datetime, until: datetime) -> bool:
    """Become the one regenerating the CRL of ``issuer_id`` unless a live lease is held."""
    ensure_crl_row(session, issuer_id)
    result = session.execute(
        update(CrlRow)
        .where(
            CrlRow.issuer_id == issuer_id,
            (CrlRow.lease_until.is_(None)) | (CrlRow.lease_until < now) | (CrlRow.lease_owner == owner),
        )
        .values(lease_owner=owner, lease_until=until)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release_lease(session: Session, issuer_id: int, owner: str) -> None:
    session.execute(
        update(CrlRow)
        .where(CrlRow.issuer_id == issuer_id, CrlRow.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def next_number(session: Session, issuer_id: int) -> int:
    """Hand out the next CRL number (RFC 5280 5.2.3)."""
    number = session.execute(
        update(CrlRow)
        .where(CrlRow.issuer_id == issuer_id)
        .values(number=CrlRow.number + 1)
        .returning(CrlRow.number)
    ).scalar_one()
    return int(number)


def store_crl(
    session: Session,
    issuer_id: int,
    *,
    number: int,
    covered: list[int],
    der: bytes | bytearray,
    entries: int,
    this_update: datetime,
    next_update: datetime,
) -> bool:
    """Publish a signed CRL unless a higher number is already published (never go back), and
    forget the pending revocations it ``covered`` (ids from :func:`pending_ids`): exactly those,
    so one that committed meanwhile stays pending. A late writer's older CRL is refused by its
    number, whoever holds the lease now."""
    result = session.execute(
        update(CrlRow)
        .where(
            CrlRow.issuer_id == issuer_id,
            (CrlRow.published_number.is_(None)) | (CrlRow.published_number < number),
        )
        .values(
            published_number=number,
            entries=entries,
            this_update=this_update,
            next_update=next_update,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for start in range(0, len(covered), DELETE_CHUNK):
        chunk = covered[start : start + DELETE_CHUNK]
        session.execute(delete(CrlPendingRow).where(CrlPendingRow.id.in_(chunk)), execution_options=CORE)
    # SQLite: room for the bytes first, then written in place through incremental blob I/O; a
    # bound blob would be copied twice more (the bound value, the record): 2 x 53 MB at 1M entries
    sqlite_blob = session.get_bind().dialect.name == "sqlite"
    values = {
        "number": number,
        "this_update": this_update,
        "next_update": next_update,
        "der": func.zeroblob(len(der)) if sqlite_blob else der,
    }
    exists = session.scalar(select(CrlDataRow.issuer_id).where(CrlDataRow.issuer_id == issuer_id))
    if exists is None:
        session.execute(insert(CrlDataRow).values(issuer_id=issuer_id, **values))
    else:
        session.execute(update(CrlDataRow).where(CrlDataRow.issuer_id == issuer_id).values(**values))
    if sqlite_blob:  # the row id is issuer_id (an INTEGER PRIMARY KEY)
        raw = session.connection().connection.driver_connection
        with raw.blobopen("crl_data", "der", issuer_id) as blob:  # type: ignore[union-attr]
            blob.write(der)
    return True


def unencoded_entries(
    session: Session, issuer_id: int, limit: int
) -> list[tuple[int, str, datetime, str | None, datetime | None]]:
    """Up to ``limit`` (id, serial, revoked_at, reason, invalidity_date) of the issuer's revoked
    certificates whose CRL entry is not stored yet: those revoked since the last CRL, and every
    one revoked before migration 0014 (read through a partial index that holds only them)."""
    query = (
        select(
            CertificateRow.id,
            CertificateRow.serial,
            CertificateRow.revoked_at,
            CertificateRow.revocation_reason,
            CertificateRow.invalidity_date,
        )
        .where(
            CertificateRow.issuer_id == issuer_id,
            CertificateRow.status == "revoked",
            CertificateRow.crl_entry.is_(None),
        )
        .limit(limit)
    )
    # a revoked row always has its revoked_at (mark_revoked sets both)
    return [(r[0], r[1], cast(datetime, r[2]), r[3], r[4]) for r in session.execute(query)]


def store_entries(session: Session, entries: list[tuple[int, bytes]]) -> None:
    """Store the CRL entries (certificate id, DER) made for :func:`unencoded_entries`."""
    if entries:
        session.connection().execute(
            update(CertificateRow.__table__)  # type: ignore[arg-type]
            .where(CertificateRow.__table__.c.id == bindparam("cid"))
            .values(crl_entry=bindparam("entry")),
            [{"cid": cid, "entry": der} for cid, der in entries],
        )


def entry_batches(
    session: Session, issuer_id: int, unexpired_at: datetime | None, size: int = STREAM_ROWS
) -> Iterator[tuple[int, bytes]]:
    """The stored CRL entries of the issuer's revoked certificates, as batches of (number of
    entries, their DER concatenated); with ``unexpired_at``, only those still valid then (RFC
    5280 3.3 lets them go). Entries not encoded yet are left out.

    A covering index scan is fetched ``size`` rows at a time from the driver's cursor, so the
    rows are never all in memory and every fetch is a short statement under the statement
    timeout, however many entries there are. SQLAlchemy's per-row result processing would cost
    more than the rest of the CRL (~1.3 us a row). On PostgreSQL it is a server-side cursor that
    asks for binary results (SQLAlchemy would take bytea as hex text: twice the bytes to send
    and decode); on SQLite the first batch goes through SQLAlchemy, which also hands over the row
    it read ahead."""
    table = CertificateRow.__table__.c
    query = select(table.crl_entry).where(
        table.issuer_id == issuer_id, table.status == "revoked", table.crl_entry.is_not(None)
    )
    if unexpired_at is not None:
        query = query.where(table.not_after > unexpired_at)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        compiled = query.compile(connection)
        driver: Any = connection.connection.driver_connection
        with driver.cursor("crl_entries", binary=True) as cursor:  # in this transaction
            cursor.execute(str(compiled), compiled.params)
            yield from _joined(cursor.fetchmany(size), cursor.fetchmany, size)
        return
    result = connection.execute(query.execution_options(stream_results=True))
    try:
        # the driver's cursor is asked only while batches are full (SQLAlchemy closes it at the end)
        yield from _joined(result.fetchmany(size), lambda n: result.cursor.fetchmany(n), size)
    finally:
        result.close()


def _joined(
    rows: Sequence[Any], fetch: Callable[[int], Sequence[Any]], size: int
) -> Iterator[tuple[int, bytes]]:
    while rows:
        yield len(rows), b"".join([row[0] for row in rows])
        rows = fetch(size) if len(rows) == size else ()


def revoked_cas(session: Session, root_id: int) -> list[tuple[str, datetime, str | None]]:
    """(certificate PEM, revoked_at, reason) of each issuing CA that ``root_id`` revoked: the
    entries of the root CRL."""
    rows = session.execute(
        select(IssuerRow.certificate_pem, IssuerRow.revoked_at, IssuerRow.revocation_reason).where(
            IssuerRow.parent_id == root_id,
            IssuerRow.revoked_at.is_not(None),
            IssuerRow.certificate_pem.is_not(None),
        )
    )
    return [(str(r[0]), r[1], r[2]) for r in rows if r[1] is not None]


def status_of(session: Session, serial: str) -> Any:
    """(issuer_id, status, revoked_at, revocation_reason) of one certificate, by its unique serial."""
    return session.execute(
        select(
            CertificateRow.issuer_id,
            CertificateRow.status,
            CertificateRow.revoked_at,
            CertificateRow.revocation_reason,
        ).where(CertificateRow.serial == serial)
    ).first()
