"""Our CAs: the root and the issuing CAs, with the URIs of their keys. Reads return frozen
:class:`~ca_service.domain.IssuerRecord` values, never live rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from ca_service.domain import IssuerRecord, IssuerRole, IssuerState
from ca_service.store.models import CertificateRow, IssuerRow, utcnow

CORE = {"synchronize_session": False}


def _record(row: IssuerRow) -> IssuerRecord:
    return IssuerRecord(
        id=row.id,
        name=row.name,
        role=IssuerRole(row.role),
        state=IssuerState(row.state),
        key_uri=row.key_uri,
        certificate_pem=row.certificate_pem,
        parent_id=row.parent_id,
        subject=row.subject,
        not_before=row.not_before,
        not_after=row.not_after,
        checked_at=row.checked_at,
        revoked_at=row.revoked_at,
        revocation_reason=row.revocation_reason,
    )


def all_issuers(session: Session) -> list[IssuerRecord]:
    """Every CA, oldest first."""
    return [_record(r) for r in session.scalars(select(IssuerRow).order_by(IssuerRow.id))]


def by_name(session: Session, name: str) -> IssuerRecord | None:
    row = session.scalar(select(IssuerRow).where(IssuerRow.name == name))
    return _record(row) if row else None


def by_id(session: Session, issuer_id: int) -> IssuerRecord | None:
    row = session.get(IssuerRow, issuer_id)
    return _record(row) if row else None


def active_issuing(session: Session) -> IssuerRecord | None:
    """The issuing CA that signs new certificates: the newest active one."""
    row = session.scalar(
        select(IssuerRow)
        .where(IssuerRow.role == IssuerRole.ISSUING.value, IssuerRow.state == IssuerState.ACTIVE.value)
        .order_by(IssuerRow.id.desc())
        .limit(1)
    )
    return _record(row) if row else None


def root(session: Session) -> IssuerRecord | None:
    """The newest root."""
    row = session.scalar(
        select(IssuerRow)
        .where(IssuerRow.role == IssuerRole.ROOT.value)
        .order_by(IssuerRow.id.desc())
        .limit(1)
    )
    return _record(row) if row else None


def add(
    session: Session,
    *,
    name: str,
    role: IssuerRole,
    state: IssuerState,
    subject: str,
    key_uri: str,
    certificate_pem: str | None = None,
    parent_id: int | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> int:
    """Insert a CA; returns its id."""
    result = session.execute(
        insert(IssuerRow)
        .values(
            name=name,
            role=role.value,
            state=state.value,
            subject=subject,
            key_uri=key_uri,
            certificate_pem=certificate_pem,
            parent_id=parent_id,
            not_before=not_before,
            not_after=not_after,
            created_at=utcnow(),
        )
        .returning(IssuerRow.id)
    )
    return int(result.scalar_one())


def set_state(
    session: Session, issuer_id: int, state: IssuerState, expected: IssuerState | None = None
) -> bool:
    """Move a CA to ``state``; with ``expected``, only from that state. False when it was not."""
    stmt = update(IssuerRow).where(IssuerRow.id == issuer_id)
    if expected is not None:
        stmt = stmt.where(IssuerRow.state == expected.value)
    result = session.execute(stmt.values(state=state.value), execution_options=CORE)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke(session: Session, issuer_id: int, at: datetime, reason: str) -> bool:
    """Mark an issuing CA revoked by its root; False when it already was (the WHERE clause is
    re-checked under the row lock, so two revocations record one)."""
    result = session.execute(
        update(IssuerRow)
        .where(IssuerRow.id == issuer_id, IssuerRow.state != IssuerState.REVOKED.value)
        .values(state=IssuerState.REVOKED.value, revoked_at=at, revocation_reason=reason),
        execution_options=CORE,
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


_STATE = select(IssuerRow.__table__.c.state).where(IssuerRow.__table__.c.id == bindparam("id"))


def still_signs(session: Session, issuer_id: int) -> bool:
    """Whether ``issuer_id`` still signs (active or retiring, not revoked), read in the issuing
    transaction: a revocation that committed first is seen. No row lock: every issuance would
    take one on the same row (a MultiXact per certificate on PostgreSQL), and a certificate that
    commits just after its CA's revocation is invalid all the same (its CA is in the root CRL)."""
    state = session.execute(_STATE, {"id": issuer_id}).scalar()
    return state is not None and IssuerState(state).signs


def activate(
    session: Session,
    issuer_id: int,
    *,
    certificate_pem: str,
    subject: str,
    parent_id: int,
    not_before: datetime,
    not_after: datetime,
) -> None:
    """Give a pending issuing CA its certificate and make it active."""
    session.execute(
        update(IssuerRow)
        .where(IssuerRow.id == issuer_id)
        .values(
            certificate_pem=certificate_pem,
            subject=subject,
            parent_id=parent_id,
            not_before=not_before,
            not_after=not_after,
            state=IssuerState.ACTIVE.value,
        ),
        execution_options=CORE,
    )


def version(session: Session) -> tuple[tuple[object, ...], ...]:
    """What identifies the loaded issuer set: ids, states, whether each has a certificate, and
    when its keys were last checked. A few short rows, cheap enough for workers to compare now
    and then (rotation and 'issuer check' pick-up)."""
    rows = session.execute(
        select(
            IssuerRow.id, IssuerRow.state, IssuerRow.certificate_pem.is_not(None), IssuerRow.checked_at
        ).order_by(IssuerRow.id)
    )
    return tuple((r[0], r[1], bool(r[2]), r[3]) for r in rows)


def mark_checked(session: Session, at: datetime) -> None:
    """Record a successful key check of every CA (workers pick it up with the version)."""
    session.execute(update(IssuerRow).values(checked_at=at), execution_options=CORE)


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
