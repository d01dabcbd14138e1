"""Devices registered by provisioning platforms (one row per canonical MAC)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_service.errors import CAError, Kind
from ca_service.store.models import DeviceRow, utcnow


def add(
    session: Session, *, mac: str, model: str | None, firmware: str | None, labels: dict[str, Any]
) -> DeviceRow:
    now = utcnow()
    row = DeviceRow(mac=mac, model=model, firmware=firmware, labels=labels, created_at=now, updated_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise CAError(
            Kind.CONFLICT, f"Device {mac} is already registered; change it with PATCH /api/v1/devices/{mac}."
        ) from exc
    return row


def locked(session: Session, mac: str) -> DeviceRow | None:
    """The device row, locked for this transaction (PostgreSQL row lock; SQLite write
    transactions are already exclusive)."""
    return session.scalar(select(DeviceRow).where(DeviceRow.mac == mac).with_for_update())


def existing(session: Session, macs: Iterable[str]) -> dict[str, DeviceRow]:
    return {r.mac: r for r in session.scalars(select(DeviceRow).where(DeviceRow.mac.in_(list(macs))))}


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new devices in one statement (Core executemany: the bulk import path)."""
    if rows:
        now = utcnow()
        session.execute(insert(DeviceRow), [{**r, "created_at": now, "updated_at": now} for r in rows])


def update_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Update model, firmware and labels of existing devices, keyed by MAC."""
    now = utcnow()
    for r in rows:
        session.execute(
            update(DeviceRow)
            .where(DeviceRow.mac == r["mac"])
            .values(model=r["model"], firmware=r["firmware"], labels=r["labels"], updated_at=now)
        )


def page(
    session: Session, *, mac_prefixes: tuple[str, ...] | None, offset: int, limit: int
) -> tuple[list[DeviceRow], int]:
    """Devices by MAC, restricted to ``mac_prefixes`` (None: no restriction), and the total."""
    conditions = []
    if mac_prefixes is not None:
        if not mac_prefixes:
            return [], 0
        conditions.append(or_(*(DeviceRow.mac.startswith(p) for p in mac_prefixes)))
    total = session.scalar(select(func.count()).select_from(DeviceRow).where(*conditions)) or 0
    rows = session.scalars(
        select(DeviceRow).where(*conditions).order_by(DeviceRow.mac).offset(offset).limit(limit)
    )
    return list(rows), total
