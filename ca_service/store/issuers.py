"""Our CAs: the root and the issuing CAs, with the URIs of their keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_service.store.models import IssuerRow


def all_issuers(session: Session) -> list[IssuerRow]:
    return list(session.scalars(select(IssuerRow).order_by(IssuerRow.id)))


def by_name(session: Session, name: str) -> IssuerRow | None:
    return session.scalar(select(IssuerRow).where(IssuerRow.name == name))


def by_id(session: Session, issuer_id: int) -> IssuerRow | None:
    return session.get(IssuerRow, issuer_id)


def active_issuing(session: Session) -> IssuerRow | None:
    """The issuing CA that signs new certificates: the newest active one."""
    return session.scalar(
        select(IssuerRow)
        .where(IssuerRow.role == "issuing", IssuerRow.state == "active")
        .order_by(IssuerRow.id.desc())
        .limit(1)
    )


def root(session: Session) -> IssuerRow | None:
    return session.scalar(
        select(IssuerRow).where(IssuerRow.role == "root").order_by(IssuerRow.id.desc()).limit(1)
    )
