"""API tokens, stored as SHA-256 hashes only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_service.errors import CAError, Kind
from ca_service.store.models import TokenRow, utcnow


def add(session: Session, *, name: str, role: str, scopes: tuple[str, ...], token_hash: str) -> TokenRow:
    row = TokenRow(name=name, role=role, scopes=",".join(scopes), token_hash=token_hash, created_at=utcnow())
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise CAError(Kind.CONFLICT, f"A token named '{name}' already exists.") from exc
    return row


def by_hash(session: Session, token_hash: str) -> TokenRow | None:
    return session.scalar(select(TokenRow).where(TokenRow.token_hash == token_hash))


def by_name(session: Session, name: str) -> TokenRow | None:
    return session.scalar(select(TokenRow).where(TokenRow.name == name))


def all_tokens(session: Session) -> list[TokenRow]:
    return list(session.scalars(select(TokenRow).order_by(TokenRow.id)))
