"""Our CAs: the root and the issuing CAs, with the URIs of their keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ca_service.store.models import CertificateRow, IssuerRow


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


def version(session: Session) -> tuple[tuple[int, str, bool], ...]:
    """What identifies the loaded issuer set: ids, states and whether each has a certificate.
    A few short rows, cheap enough for workers to compare now and then (rotation pick-up)."""
    rows = session.execute(
        select(IssuerRow.id, IssuerRow.state, IssuerRow.certificate_pem.is_not(None)).order_by(IssuerRow.id)
    )
    return tuple((r[0], r[1], bool(r[2])) for r in rows)


def certificate_stats(session: Session) -> dict[int, tuple[int, datetime | None]]:
    """Per issuer id: how many certificates it issued and when the last of them expires."""
    rows = session.execute(
        select(CertificateRow.issuer_id, func.count(), func.max(CertificateRow.not_after)).group_by(
            CertificateRow.issuer_id
        )
    )
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def last_expiry(session: Session, issuer_id: int) -> datetime | None:
    """When the last certificate issued by ``issuer_id`` expires (None: it issued none)."""
    return session.scalar(
        select(func.max(CertificateRow.not_after)).where(CertificateRow.issuer_id == issuer_id)
    )
