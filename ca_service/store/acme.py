"""ACME rows: nonces, external account binding keys, accounts and orders (RFC 8555)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_service.errors import CAError, Kind
from ca_service.store.models import AcmeAccountRow, AcmeNonceRow, AcmeOrderRow, EabKeyRow

# Plain SQL semantics for UPDATE/DELETE: no ORM session synchronisation (the hot path).
CORE = {"synchronize_session": False}


# -- nonces (section 6.5): single use is the DELETE's row count, so it holds across workers --
def add_nonce(session: Session, value: str, expires_at: datetime) -> None:
    session.execute(insert(AcmeNonceRow).values(value=value, expires_at=expires_at))


def use_nonce(session: Session, value: str, now: datetime) -> bool:
    """Delete the nonce; True when it existed and had not expired (each nonce works once)."""
    result = session.execute(
        delete(AcmeNonceRow).where(AcmeNonceRow.value == value, AcmeNonceRow.expires_at > now),
        execution_options=CORE,
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def purge_nonces(session: Session, now: datetime) -> None:
    session.execute(delete(AcmeNonceRow).where(AcmeNonceRow.expires_at <= now), execution_options=CORE)


# -- external account binding keys ----------------------------------------------------------
def add_eab(session: Session, **values: Any) -> None:
    session.execute(insert(EabKeyRow).values(**values))


def eab_by_kid(session: Session, kid: str) -> EabKeyRow | None:
    return session.scalar(select(EabKeyRow).where(EabKeyRow.kid == kid))


def eab_by_name(session: Session, name: str) -> EabKeyRow | None:
    return session.scalar(select(EabKeyRow).where(EabKeyRow.name == name))


def bind_eab(session: Session, eab_id: int, account_id: int) -> bool:
    """Bind an unused EAB key to an account; False when another account took it first."""
    result = session.execute(
        update(EabKeyRow)
        .where(EabKeyRow.id == eab_id, EabKeyRow.account_id.is_(None))
        .values(account_id=account_id),
        execution_options=CORE,
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# -- accounts -------------------------------------------------------------------------------
def account(session: Session, account_id: int) -> AcmeAccountRow | None:
    return session.get(AcmeAccountRow, account_id)


def account_by_thumbprint(session: Session, thumbprint: str) -> AcmeAccountRow | None:
    return session.scalar(select(AcmeAccountRow).where(AcmeAccountRow.key_thumbprint == thumbprint))


def add_account(session: Session, **values: Any) -> AcmeAccountRow:
    row = AcmeAccountRow(**values)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # two newAccount requests with one key at the same time
        raise CAError(Kind.CONFLICT, "An account with this key was created meanwhile; retry.") from exc
    return row


# -- orders ---------------------------------------------------------------------------------
def add_order(session: Session, **values: Any) -> AcmeOrderRow:
    row = AcmeOrderRow(**values)
    session.add(row)
    session.flush()
    return row


def order(session: Session, token: str) -> AcmeOrderRow | None:
    return session.scalar(select(AcmeOrderRow).where(AcmeOrderRow.token == token))


def orders_of(session: Session, account_id: int, limit: int = 1000) -> list[AcmeOrderRow]:
    return list(
        session.scalars(
            select(AcmeOrderRow)
            .where(AcmeOrderRow.account_id == account_id)
            .order_by(AcmeOrderRow.id.desc())
            .limit(limit)
        )
    )


def order_of_certificate(session: Session, serial: str) -> AcmeOrderRow | None:
    return session.scalar(select(AcmeOrderRow).where(AcmeOrderRow.serial == serial))


def complete_order(session: Session, order_id: int, serial: str) -> bool:
    """ready -> valid with the certificate's serial; False when the order was not ready."""
    result = session.execute(
        update(AcmeOrderRow)
        .where(AcmeOrderRow.id == order_id, AcmeOrderRow.status == "ready")
        .values(status="valid", serial=serial),
        execution_options=CORE,
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
