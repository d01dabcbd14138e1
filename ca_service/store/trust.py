"""Trust anchors and the trust bundle's version history."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_service.errors import CAError, Kind
from ca_service.store.models import TrustAnchorRow, TrustBundleVersionRow, utcnow


def add_anchor(session: Session, row: TrustAnchorRow) -> TrustAnchorRow:
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise CAError(
            Kind.CONFLICT,
            f"This certificate (sha256 {row.fingerprint_sha256[:16]}...) is already an active anchor.",
        ) from exc
    return row


def anchors(session: Session, include_retired: bool = False) -> list[TrustAnchorRow]:
    query = select(TrustAnchorRow).order_by(TrustAnchorRow.id)
    if not include_retired:
        query = query.where(TrustAnchorRow.retired_at.is_(None))
    return list(session.scalars(query))


def anchor(session: Session, anchor_id: int) -> TrustAnchorRow | None:
    return session.get(TrustAnchorRow, anchor_id)


def lock_versions(session: Session) -> None:
    """Make bundle changes take turns until the transaction ends, so that latest + 1 is free
    when the caller inserts it: on PostgreSQL an EXCLUSIVE table lock (plain reads go on); on
    SQLite the write transaction's BEGIN IMMEDIATE already serialises writers."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE trust_bundle_versions IN EXCLUSIVE MODE"))


def latest_version(session: Session) -> TrustBundleVersionRow | None:
    return session.scalar(
        select(TrustBundleVersionRow).order_by(TrustBundleVersionRow.version.desc()).limit(1)
    )


def add_version(session: Session, version: int, digest: str, reason: str) -> None:
    """Record the next version (call :func:`lock_versions` first); the primary key still refuses a
    reused number."""
    session.add(TrustBundleVersionRow(version=version, digest=digest, reason=reason[:64], at=utcnow()))
    session.flush()
