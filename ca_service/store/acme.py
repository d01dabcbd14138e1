"""ACME state: nonces, external account binding keys, accounts and orders (RFC 8555). Reads
return frozen records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_service.errors import CAError, Kind
from ca_service.store.models import (
    AcmeAccountRow,
    AcmeNonceKeyRow,
    AcmeNonceRow,
    AcmeOrderRow,
    EabKeyRow,
    utcnow,
)
from ca_service.store.records import Lookup, record


@dataclass(frozen=True)
class EabRecord:
    id: int
    kid: str
    name: str
    scopes: str  # comma-separated MAC prefixes
    hmac_key: bytes = field(repr=False)  # sealed under the wrapping key
    account_id: int | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class AccountRecord:
    id: int
    key_thumbprint: str
    jwk: str  # JSON
    status: str  # valid | deactivated
    contact: list[str]
    eab_id: int
    scopes: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class OrderRecord:
    id: int
    token: str
    account_id: int
    mac: str
    identifiers: list[dict[str, str]]
    profile: str
    status: str  # ready | valid | invalid
    replaces: str | None
    serial: str | None
    expires_at: datetime
    created_at: datetime


# Plain SQL semantics for UPDATE/DELETE: no ORM session synchronisation (the hot path).
CORE = {"synchronize_session": False}


# -- nonces (section 6.5): the HMAC key, and the redeemed nonces (single use across workers) --
def nonce_key(session: Session, candidate: bytes) -> bytes:
    """The nonce HMAC key: ``candidate`` becomes it unless a worker stored one first."""
    session.execute(_insert(session, AcmeNonceKeyRow).values(id=1, key=candidate, created_at=utcnow()))
    return bytes(session.scalar(select(AcmeNonceKeyRow.key).where(AcmeNonceKeyRow.id == 1)) or b"")


# built once (Core, on the tables): every JWS request redeems a nonce
_NONCES = cast(Table, AcmeNonceRow.__table__)
_ACCOUNTS = cast(Table, AcmeAccountRow.__table__)
_SIGNER_VALID = exists().where(
    _ACCOUNTS.c.id == bindparam("account"),
    _ACCOUNTS.c.status == "valid",
    _ACCOUNTS.c.key_thumbprint == bindparam("thumbprint"),
)
_REDEEM = {
    name: dialect.insert(_NONCES).on_conflict_do_nothing().returning(_NONCES.c.value)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_REDEEM_SIGNED = {
    name: dialect.insert(_NONCES)
    .from_select(
        ["value", "expires_at"],
        select(
            bindparam("value", type_=_NONCES.c.value.type),
            bindparam("expires_at", type_=_NONCES.c.expires_at.type),
        ).where(_SIGNER_VALID),
    )
    .on_conflict_do_nothing()
    .returning(_NONCES.c.value)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def redeem_nonce(
    session: Session, value: str, expires_at: datetime, signer: tuple[int, str] | None = None
) -> bool:
    """Record ``value`` as used; False when it was used before (the primary key decides). With
    ``signer`` (account id, key thumbprint), only if that account is valid with that key: one
    statement checks both; False then does not say which condition failed."""
    params: dict[str, Any] = {"value": value, "expires_at": expires_at}
    if signer is None:
        return session.execute(_REDEEM[session.get_bind().dialect.name], params).first() is not None
    params["account"], params["thumbprint"] = signer
    return session.execute(_REDEEM_SIGNED[session.get_bind().dialect.name], params).first() is not None


def purge_nonces(session: Session, now: datetime) -> None:
    """Forget redemptions of expired nonces (those nonces fail their age check anyway)."""
    session.execute(delete(AcmeNonceRow).where(AcmeNonceRow.expires_at <= now), execution_options=CORE)


def _insert(session: Session, model: type[Any]) -> Any:
    """An INSERT that skips a row whose primary key exists (PostgreSQL and SQLite alike)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).on_conflict_do_nothing()


# -- external account binding keys ----------------------------------------------------------
def add_eab(session: Session, **values: Any) -> None:
    session.execute(insert(EabKeyRow).values(**values))


def eab_by_kid(session: Session, kid: str) -> EabRecord | None:
    row = session.scalar(select(EabKeyRow).where(EabKeyRow.kid == kid))
    return record(EabRecord, row) if row else None


def eab_by_name(session: Session, name: str) -> EabRecord | None:
    """The active (not revoked) EAB key named ``name``."""
    row = session.scalar(select(EabKeyRow).where(EabKeyRow.name == name, EabKeyRow.revoked_at.is_(None)))
    return record(EabRecord, row) if row else None


def all_eabs(session: Session) -> list[EabRecord]:
    return [record(EabRecord, r) for r in session.scalars(select(EabKeyRow).order_by(EabKeyRow.id))]


def set_eab_hmac_key(session: Session, eab_id: int, sealed: bytes) -> None:
    """Replace the sealed HMAC key of an EAB key (resealing: the key itself is unchanged)."""
    session.execute(
        update(EabKeyRow).where(EabKeyRow.id == eab_id).values(hmac_key=sealed), execution_options=CORE
    )


def revoke_eab(session: Session, eab_id: int, when: datetime) -> bool:
    """Mark an EAB key revoked; False when it was revoked already."""
    result = session.execute(
        update(EabKeyRow)
        .where(EabKeyRow.id == eab_id, EabKeyRow.revoked_at.is_(None))
        .values(revoked_at=when),
        execution_options=CORE,
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


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
_ACCOUNT = Lookup(AccountRecord, AcmeAccountRow, "id")
_ACCOUNT_BY_THUMBPRINT = Lookup(AccountRecord, AcmeAccountRow, "key_thumbprint")


def account(session: Session, account_id: int) -> AccountRecord | None:
    """The account (every JWS request signed by an account reads it)."""
    return _ACCOUNT(session, account_id)


def account_by_thumbprint(session: Session, thumbprint: str) -> AccountRecord | None:
    return _ACCOUNT_BY_THUMBPRINT(session, thumbprint)


def add_account(session: Session, **values: Any) -> AccountRecord:
    row = AcmeAccountRow(**values)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # two newAccount requests with one key at the same time
        raise CAError(Kind.CONFLICT, "An account with this key was created meanwhile; retry.") from exc
    return record(AccountRecord, row)


def update_account(session: Session, account_id: int, **values: Any) -> AccountRecord:
    """Change an account's contact, status or key (``jwk`` with ``key_thumbprint``)."""
    session.execute(update(AcmeAccountRow).where(AcmeAccountRow.id == account_id).values(**values))
    found = account(session, account_id)
    if found is None:
        raise CAError(Kind.ACCOUNT_MISSING, "There is no account with this key id.")
    return found


# -- orders ---------------------------------------------------------------------------------
_ADD_ORDER = insert(cast(Table, AcmeOrderRow.__table__)).returning(AcmeOrderRow.__table__.c.id)
_ORDER = Lookup(OrderRecord, AcmeOrderRow, "token")
_ORDER_OF_CERTIFICATE = Lookup(OrderRecord, AcmeOrderRow, "serial")


def add_order(session: Session, **values: Any) -> OrderRecord:
    values = {"serial": None, **values}
    order_id = session.execute(_ADD_ORDER, values).scalar_one()
    return OrderRecord(id=order_id, **values)


def order(session: Session, token: str) -> OrderRecord | None:
    return _ORDER(session, token)


def order_tokens(session: Session, account_id: int, limit: int = 1000) -> list[str]:
    """The tokens of an account's orders, newest first."""
    return list(
        session.scalars(
            select(AcmeOrderRow.token)
            .where(AcmeOrderRow.account_id == account_id)
            .order_by(AcmeOrderRow.id.desc())
            .limit(limit)
        )
    )


def order_of_certificate(session: Session, serial: str) -> OrderRecord | None:
    return _ORDER_OF_CERTIFICATE(session, serial)


_COMPLETE_ORDER = (
    update(cast(Table, AcmeOrderRow.__table__))
    .where(AcmeOrderRow.__table__.c.token == bindparam("order"), AcmeOrderRow.__table__.c.status == "ready")
    .values(status="valid", serial=bindparam("serial"))
)


def complete_order(session: Session, token: str, serial: str) -> bool:
    """ready -> valid with the certificate's serial; False when the order was not ready."""
    return bool(session.execute(_COMPLETE_ORDER, {"order": token, "serial": serial}).rowcount)  # type: ignore[attr-defined]


# -- operators' listings (ca-service eab list, acme accounts list, /api/v1/acme/...) ----------
@dataclass(frozen=True)
class AccountListing:
    """An account with its EAB key's kid and name and how many certificates it was issued."""

    account: AccountRecord
    eab_kid: str
    eab_name: str
    certificates: int


def account_listing(
    session: Session, *, account_id: int | None = None, offset: int = 0, limit: int | None = None
) -> tuple[list[AccountListing], int]:
    """Accounts by id (one, or a page of all) and the number of all accounts."""
    issued = (
        select(AcmeOrderRow.account_id, func.count(AcmeOrderRow.serial).label("n"))
        .group_by(AcmeOrderRow.account_id)
        .subquery()
    )
    query = (
        select(AcmeAccountRow, EabKeyRow.kid, EabKeyRow.name, func.coalesce(issued.c.n, 0))
        .join(EabKeyRow, EabKeyRow.id == AcmeAccountRow.eab_id)
        .outerjoin(issued, issued.c.account_id == AcmeAccountRow.id)
        .order_by(AcmeAccountRow.id)
        .offset(offset)
        .limit(limit)
    )
    if account_id is not None:
        query = query.where(AcmeAccountRow.id == account_id)
    rows = [
        AccountListing(record(AccountRecord, row), kid, name, int(n))
        for row, kid, name, n in session.execute(query)
    ]
    total = session.scalar(select(func.count()).select_from(AcmeAccountRow)) or 0
    return rows, int(total)
