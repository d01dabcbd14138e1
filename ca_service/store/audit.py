"""The audit log: append-only rows written in the same transaction as the change they record,
and the queries operators read them with (GET /api/v1/audit, ``ca-service audit``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, insert, select
from sqlalchemy.orm import Session

from ca_service.domain import MacAddress, parse_serial
from ca_service.errors import CAError, Kind
from ca_service.store.models import AuditRow, utcnow
from ca_service.store.records import record as frozen

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


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    outcome: str  # success | refused | error
    mac: str | None
    serial: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditFilter:
    """Which audit events to read: a time range (``since`` inclusive, ``until`` exclusive), the
    actor as recorded (``admin:ops``, ``provisioner:acme-account-3``, ``cli:alice``), the action
    (``certificate.issue``; ``acme.*`` for every action that starts with ``acme.``), a MAC (any
    spelling) and a serial (hex, colons allowed). Use :meth:`of` to normalise MAC and serial."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    mac: str | None = None
    serial: str | None = None

    @classmethod
    def of(
        cls,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        mac: str | None = None,
        serial: str | None = None,
    ) -> AuditFilter:
        for moment in (since, until):
            if moment is not None and moment.tzinfo is None:
                raise CAError(Kind.MALFORMED, "Give 'since' and 'until' with a time zone (UTC: ...Z).")
        return cls(
            since,
            until,
            actor or None,
            action or None,
            MacAddress.parse(mac).value if mac else None,
            parse_serial(serial) if serial else None,
        )

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.since is not None:
            found.append(AuditRow.at >= self.since)
        if self.until is not None:
            found.append(AuditRow.at < self.until)
        if self.actor:
            found.append(AuditRow.actor == self.actor)
        if self.action and self.action.endswith("*"):
            found.append(AuditRow.action.startswith(self.action[:-1], autoescape=True))
        elif self.action:
            found.append(AuditRow.action == self.action)
        if self.mac:
            found.append(AuditRow.mac == self.mac)
        if self.serial:
            found.append(AuditRow.serial == self.serial)
        return found


def search(
    session: Session, wanted: AuditFilter, *, offset: int = 0, limit: int = 100
) -> tuple[list[AuditRecord], int]:
    """A page of the matching events, newest first, and how many match."""
    conditions = wanted.conditions()
    total = session.scalar(select(func.count()).select_from(AuditRow).where(*conditions)) or 0
    rows = session.scalars(
        select(AuditRow).where(*conditions).order_by(AuditRow.id.desc()).offset(offset).limit(limit)
    )
    return [frozen(AuditRecord, r) for r in rows], int(total)


def after(session: Session, wanted: AuditFilter, after_id: int, limit: int) -> list[AuditRecord]:
    """The next ``limit`` matching events after event ``after_id``, oldest first (an export that
    reads the whole log batch by batch, each batch by the primary key)."""
    rows = session.scalars(
        select(AuditRow)
        .where(AuditRow.id > after_id, *wanted.conditions())
        .order_by(AuditRow.id)
        .limit(limit)
    )
    return [frozen(AuditRecord, r) for r in rows]
