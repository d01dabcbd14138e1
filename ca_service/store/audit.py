"""The audit log: append-only rows written in the same transaction as the change they record."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from ca_service.store.models import AuditRow, utcnow

_INSERT = insert(cast(Table, AuditRow.__table__))


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    outcome: str = "success",
    mac: str | None = None,
    serial: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    session.execute(
        _INSERT,
        {
            "at": at or utcnow(),
            "actor": actor[:160],
            "action": action,
            "outcome": outcome,
            "mac": mac,
            "serial": serial,
            "detail": detail or {},
        },
    )


def events(
    session: Session, *, mac: str | None = None, action: str | None = None, limit: int = 100
) -> list[AuditRow]:
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if mac:
        query = query.where(AuditRow.mac == mac)
    if action:
        query = query.where(AuditRow.action == action)
    return list(session.scalars(query))
