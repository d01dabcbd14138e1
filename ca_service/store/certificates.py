"""Issued certificates and devices. Reads return frozen records, never live rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from ca_service.store.models import CertificateRow, DeviceRow, utcnow
from ca_service.store.records import Lookup, record


@dataclass(frozen=True)
class CertificateRecord:
    """One issued certificate as stored (the ``certificates`` table)."""

    serial: str
    issuer_id: int
    mac: str
    profile: str
    key_type: str
    not_before: datetime
    not_after: datetime
    status: str
    fingerprint_sha256: str
    der: bytes = field(repr=False)
    created_by: str
    created_at: datetime
    replaces: str | None = None
    replaced_by: str | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    invalidity_date: datetime | None = None
    id: int | None = None


@dataclass(frozen=True)
class DeviceRecord:
    mac: str
    model: str | None
    firmware: str | None
    labels: dict[str, Any]
    created_at: datetime | None


def _record(row: CertificateRow) -> CertificateRecord:
    return record(CertificateRecord, row)


class SerialTaken(Exception):
    """The serial of a new certificate is already stored (p ~ 2^-159 with random serials): the
    caller discards the unreturned certificate and signs again with a fresh serial."""


Write = Callable[[Session, str], None]
"""A write that joins the issuing transaction (design decision 6): it runs after the
certificate row is inserted, with the new serial, and commits or rolls back with it (an ACME
order completed, a key made for a device stored, a condition re-checked under a lock)."""

# Statements of the issuance hot path are built once (Core, on the tables): SQLAlchemy then
# reuses their compiled form instead of rebuilding an ORM statement per request. The insert
# skips a duplicate serial instead of failing, so only that conflict reads as SerialTaken.
_INSERT_CERTIFICATE = {
    name: dialect.insert(cast(Table, CertificateRow.__table__))
    .on_conflict_do_nothing(index_elements=["serial"])
    .returning(CertificateRow.__table__.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_INSERT_DEVICE = {
    "postgresql": postgresql.insert(cast(Table, DeviceRow.__table__)).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(cast(Table, DeviceRow.__table__)).on_conflict_do_nothing(),
}


def insert_certificate(session: Session, **values: Any) -> None:
    """Insert one certificate row; a duplicate serial raises :class:`SerialTaken` (any other
    integrity failure propagates as the error it is)."""
    inserted = session.execute(_INSERT_CERTIFICATE[session.get_bind().dialect.name], values).first()
    if inserted is None:
        raise SerialTaken(values["serial"])


def ensure_device(session: Session, mac: str) -> None:
    """Create the device row on first issuance; keep an existing one untouched."""
    now = utcnow()
    stmt = _INSERT_DEVICE[session.get_bind().dialect.name]
    session.execute(
        stmt,
        {"mac": mac, "labels": {}, "model": None, "firmware": None, "created_at": now, "updated_at": now},
    )


_BY_SERIAL = Lookup(CertificateRecord, CertificateRow, "serial")


def by_serial(session: Session, serial: str) -> CertificateRecord | None:
    return _BY_SERIAL(session, serial)


def device(session: Session, mac: str) -> DeviceRecord | None:
    row = session.get(DeviceRow, mac)
    if row is None:
        return None
    return DeviceRecord(row.mac, row.model, row.firmware, dict(row.labels or {}), row.created_at)


def for_device(
    session: Session, mac: str, *, offset: int = 0, limit: int | None = None
) -> tuple[list[CertificateRecord], int]:
    """A device's certificates, newest first (a window of them), and how many it has."""
    total = session.scalar(select(func.count()).select_from(CertificateRow).where(CertificateRow.mac == mac))
    rows = session.scalars(
        select(CertificateRow)
        .where(CertificateRow.mac == mac)
        .order_by(CertificateRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_record(r) for r in rows], total or 0


def search(
    session: Session,
    *,
    mac: str | None = None,
    status: str | None = None,
    expires_before: datetime | None = None,
    mac_prefixes: tuple[str, ...] | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[CertificateRecord], int]:
    """Certificates matching the filters, newest first, and the total count.
    ``mac_prefixes`` restricts to a provisioner's scopes (None: no restriction)."""
    conditions = []
    if mac:
        conditions.append(CertificateRow.mac == mac)
    if status:
        conditions.append(CertificateRow.status == status)
    if expires_before:
        conditions.append(CertificateRow.not_after < expires_before)
    if mac_prefixes is not None:
        if not mac_prefixes:
            return [], 0
        conditions.append(or_(*(CertificateRow.mac.startswith(p) for p in mac_prefixes)))
    total = session.scalar(select(func.count()).select_from(CertificateRow).where(*conditions)) or 0
    rows = session.scalars(
        select(CertificateRow)
        .where(*conditions)
        .order_by(CertificateRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_record(r) for r in rows], total


def mark_replaced(session: Session, serial: str, successor: str) -> bool:
    """Record ``successor`` as the replacement of ``serial``; False when it already has one."""
    result = session.execute(
        update(CertificateRow)
        .where(CertificateRow.serial == serial, CertificateRow.replaced_by.is_(None))
        .values(replaced_by=successor),
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def due(
    session: Session,
    before: datetime,
    now: datetime,
    mac_prefixes: tuple[str, ...] | None = None,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[CertificateRecord], int]:
    """Valid, unexpired certificates that end before ``before`` and have no successor, soonest
    first (a window of them), and how many there are."""
    conditions = [
        CertificateRow.status == "valid",
        CertificateRow.replaced_by.is_(None),
        CertificateRow.not_after < before,
        CertificateRow.not_after > now,
    ]
    if mac_prefixes is not None:
        if not mac_prefixes:
            return [], 0
        conditions.append(or_(*(CertificateRow.mac.startswith(p) for p in mac_prefixes)))
    total = session.scalar(select(func.count()).select_from(CertificateRow).where(*conditions))
    rows = session.scalars(
        select(CertificateRow)
        .where(*conditions)
        .order_by(CertificateRow.not_after, CertificateRow.id)
        .offset(offset)
        .limit(limit)
    )
    return [_record(r) for r in rows], total or 0


def superseded(session: Session, successor_before: datetime) -> list[CertificateRecord]:
    """Valid certificates whose successor was issued before ``successor_before``."""
    successor = aliased(CertificateRow)
    rows = session.scalars(
        select(CertificateRow)
        .join(successor, successor.serial == CertificateRow.replaced_by)
        .where(CertificateRow.status == "valid", successor.created_at < successor_before)
        .order_by(CertificateRow.id)
    )
    return [_record(r) for r in rows]


def unexpired_valid(session: Session, mac: str, now: datetime) -> list[CertificateRecord]:
    """A device's certificates that are neither expired nor revoked, oldest first."""
    rows = session.scalars(
        select(CertificateRow)
        .where(CertificateRow.mac == mac, CertificateRow.status == "valid", CertificateRow.not_after > now)
        .order_by(CertificateRow.id)
    )
    return [_record(r) for r in rows]
