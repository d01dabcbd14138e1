"""Revocation state: revoking certificate rows, and the per-issuer CRL row (numbers, lease,
stored bytes). Every counter and lock here is a database row, so workers and hosts agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, insert, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ca_service.store.models import CertificateRow, CrlDataRow, CrlRow

STREAM_ROWS = 20_000


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
    bump_revision(session, issuer_id)
    return True


def ensure_crl_row(session: Session, issuer_id: int) -> None:
    values = {"issuer_id": issuer_id, "number": 0, "revision": 0, "built_revision": -1, "entries": 0}
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = postgresql.insert(CrlRow).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(CrlRow).values(**values).on_conflict_do_nothing()
    session.execute(stmt)


def bump_revision(session: Session, issuer_id: int) -> None:
    """Record that the CRL of ``issuer_id`` misses a revocation (in the revoking transaction)."""
    ensure_crl_row(session, issuer_id)
    session.execute(update(CrlRow).where(CrlRow.issuer_id == issuer_id).values(revision=CrlRow.revision + 1))


_STATE_COLUMNS = (
    CrlRow.issuer_id,
    CrlRow.revision,
    CrlRow.built_revision,
    CrlRow.published_number,
    CrlRow.entries,
    CrlRow.this_update,
    CrlRow.next_update,
)


def crl_states(session: Session) -> list[Any]:
    """Every issuer's CRL state without the CRL bytes."""
    return list(session.execute(select(*_STATE_COLUMNS)))


def crl_state(session: Session, issuer_id: int) -> Any:
    return session.execute(select(*_STATE_COLUMNS).where(CrlRow.issuer_id == issuer_id)).first()


def published_crl(session: Session, issuer_id: int) -> Any:
    """(number, this_update, next_update, der) of the published CRL, or None."""
    return session.execute(
        select(CrlDataRow.number, CrlDataRow.this_update, CrlDataRow.next_update, CrlDataRow.der).where(
            CrlDataRow.issuer_id == issuer_id
        )
    ).first()


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


def next_number(session: Session, issuer_id: int) -> tuple[int, int]:
    """Hand out the next CRL number (RFC 5280 5.2.3) and the revision it will cover."""
    row = session.execute(
        update(CrlRow)
        .where(CrlRow.issuer_id == issuer_id)
        .values(number=CrlRow.number + 1)
        .returning(CrlRow.number, CrlRow.revision)
    ).one()
    return int(row[0]), int(row[1])


def store_crl(
    session: Session,
    issuer_id: int,
    *,
    number: int,
    revision: int,
    der: bytes,
    entries: int,
    this_update: datetime,
    next_update: datetime,
) -> bool:
    """Publish a signed CRL unless a higher number is already published (never go back)."""
    result = session.execute(
        update(CrlRow)
        .where(
            CrlRow.issuer_id == issuer_id,
            (CrlRow.published_number.is_(None)) | (CrlRow.published_number < number),
        )
        .values(
            published_number=number,
            built_revision=revision,
            entries=entries,
            this_update=this_update,
            next_update=next_update,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    values = {"number": number, "this_update": this_update, "next_update": next_update, "der": der}
    exists = session.scalar(select(CrlDataRow.issuer_id).where(CrlDataRow.issuer_id == issuer_id))
    if exists is None:
        session.execute(insert(CrlDataRow).values(issuer_id=issuer_id, **values))
    else:
        session.execute(update(CrlDataRow).where(CrlDataRow.issuer_id == issuer_id).values(**values))
    return True


def revoked_entries(
    session: Session, issuer_id: int, unexpired_at: datetime | None
) -> Iterator[tuple[str, datetime, str | None, datetime | None]]:
    """Stream (serial, revoked_at, reason, invalidity_date) of the issuer's revoked certificates;
    with ``unexpired_at``, only those still valid at that time (RFC 5280 3.3 lets them go).

    The dates come back as the driver gives them, without the UTC type's per-row conversion (the
    CRL path's hot loop): naive UTC from SQLite, timezone-aware from PostgreSQL."""
    query = select(
        CertificateRow.serial,
        type_coerce(CertificateRow.revoked_at, DateTime()),
        CertificateRow.revocation_reason,
        type_coerce(CertificateRow.invalidity_date, DateTime()),
    ).where(CertificateRow.issuer_id == issuer_id, CertificateRow.status == "revoked")
    if unexpired_at is not None:
        query = query.where(CertificateRow.not_after > unexpired_at)
    for row in session.connection().execute(query.execution_options(yield_per=STREAM_ROWS)):
        yield row[0], row[1], row[2], row[3]


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
