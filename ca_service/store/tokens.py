"""API tokens, stored as SHA-256 hashes only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_service.errors import CAError, Kind
from ca_service.store.db import Database
from ca_service.store.models import TokenRow, utcnow
from ca_service.store.records import record


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    role: str
    scopes: str  # comma-separated MAC prefixes
    created_at: datetime
    revoked_at: datetime | None


def add(session: Session, *, name: str, role: str, scopes: tuple[str, ...], token_hash: str) -> None:
    row = TokenRow(name=name, role=role, scopes=",".join(scopes), token_hash=token_hash, created_at=utcnow())
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # the partial unique index: one active token per name
        raise CAError(
            Kind.CONFLICT,
            f"An active token named '{name}' already exists; revoke it first or choose another name.",
        ) from exc


_BY_HASH = select(
    TokenRow.__table__.c.id,
    TokenRow.__table__.c.name,
    TokenRow.__table__.c.role,
    TokenRow.__table__.c.scopes,
    TokenRow.__table__.c.token_hash,
    TokenRow.__table__.c.revoked_at,
).where(TokenRow.__table__.c.token_hash == bindparam("token_hash"))


def by_hash(db: Database, token_hash: str) -> Any:
    """The token with this hash (a Core row read without a Session: this runs on every API
    request)."""
    return db.lookup(_BY_HASH, {"token_hash": token_hash})


def by_name(session: Session, name: str) -> TokenRecord | None:
    """The active token named ``name``, else the one revoked last (a name is unique among
    active tokens only)."""
    query = (
        select(TokenRow)
        .where(TokenRow.name == name)
        .order_by(TokenRow.revoked_at.is_not(None), TokenRow.id.desc())
        .limit(1)
    )
    row = session.scalar(query)
    return record(TokenRecord, row) if row else None


def all_tokens(session: Session) -> list[TokenRecord]:
    return [record(TokenRecord, r) for r in session.scalars(select(TokenRow).order_by(TokenRow.id))]


def revoke(session: Session, token_id: int) -> None:
    session.execute(update(TokenRow).where(TokenRow.id == token_id).values(revoked_at=utcnow()))
