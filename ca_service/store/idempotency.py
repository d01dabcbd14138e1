"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header): what a keyed write did, stored in
the write's own transaction."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_service.errors import CAError, Kind
from ca_service.store.certificates import Write
from ca_service.store.models import IdempotencyKeyRow
from ca_service.store.records import record

PURGE_ONE_IN = 64


class KeyInUse(CAError):
    """Another request with this Idempotency-Key committed first (the caller replays its answer)."""

    def __init__(self) -> None:
        super().__init__(Kind.CONFLICT, "A request with this Idempotency-Key was just completed.")


@dataclass(frozen=True)
class KeyRecord:
    principal: str
    key: str
    request_hash: str
    result: str
    created_at: datetime
    expires_at: datetime


def find(session: Session, principal: str, key: str, now: datetime) -> KeyRecord | None:
    row = session.scalar(
        select(IdempotencyKeyRow).where(
            IdempotencyKeyRow.principal == principal,
            IdempotencyKeyRow.key == key,
            IdempotencyKeyRow.expires_at > now,
        )
    )
    return record(KeyRecord, row) if row else None


def remember(principal: str, key: str, request_hash: str, now: datetime, expires_at: datetime) -> Write:
    """A write that records the key with the serial(s) of what its transaction did (an expired
    record of the same key is replaced); a key that another transaction recorded first is
    :class:`KeyInUse` (this one then rolls back)."""

    def write(session: Session, result: str) -> None:
        session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.principal == principal,
                IdempotencyKeyRow.key == key,
                IdempotencyKeyRow.expires_at <= now,
            )
        )
        try:
            with session.begin_nested():
                session.execute(
                    insert(IdempotencyKeyRow).values(
                        principal=principal,
                        key=key,
                        request_hash=request_hash,
                        result=result,
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
        except IntegrityError as exc:
            raise KeyInUse() from exc
        if secrets.randbelow(PURGE_ONE_IN) == 0:
            session.execute(delete(IdempotencyKeyRow).where(IdempotencyKeyRow.expires_at <= now))

    return write
