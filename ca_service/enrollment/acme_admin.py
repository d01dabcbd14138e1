"""What operators see and manage of ACME: the external account binding keys they created and
the accounts bound to them (``ca-service eab``, ``ca-service acme accounts``, /api/v1/acme/).

Revoking an EAB key (RFC 8555 section 7.3.4 leaves their lifecycle to the CA) stops it from
binding an account and deactivates the account it bound; deactivating an account is what the
account itself may do (section 7.3.6): its requests are refused from then on, its certificates
stay valid (revoke them apart if needed). Every change is audited in its transaction. The web
layer checks roles; here ``actor`` is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ca_service.clock import SYSTEM, Clock
from ca_service.errors import CAError, Kind
from ca_service.store import Database, audit
from ca_service.store import acme as store


@dataclass(frozen=True)
class EabKeyInfo:
    """An EAB key as listed: never its HMAC key."""

    kid: str
    name: str
    scopes: tuple[str, ...]
    account_id: int | None
    created_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "bound" if self.account_id is not None else "unused"


@dataclass(frozen=True)
class AccountInfo:
    id: int
    status: str
    contact: tuple[str, ...]
    scopes: tuple[str, ...]
    eab_kid: str
    eab_name: str
    certificates: int
    created_at: datetime | None


def _scopes(text: str) -> tuple[str, ...]:
    return tuple(s for s in text.split(",") if s)


def _eab(row: store.EabRecord) -> EabKeyInfo:
    return EabKeyInfo(row.kid, row.name, _scopes(row.scopes), row.account_id, row.created_at, row.revoked_at)


def _account(item: store.AccountListing) -> AccountInfo:
    a = item.account
    return AccountInfo(
        a.id,
        a.status,
        tuple(a.contact or ()),
        _scopes(a.scopes),
        item.eab_kid,
        item.eab_name,
        item.certificates,
        a.created_at,
    )


class AcmeAdmin:
    """Listing and revoking EAB keys, listing and deactivating ACME accounts."""

    def __init__(self, db: Database, clock: Clock = SYSTEM) -> None:
        self.db = db
        self.clock = clock

    def eab_keys(self) -> list[EabKeyInfo]:
        """Every EAB key, oldest first (revoked ones included)."""
        with self.db.read() as session:
            return [_eab(r) for r in store.all_eabs(session)]

    def revoke_eab(self, kid: str, actor: str) -> EabKeyInfo:
        """Revoke the EAB key ``kid`` and deactivate the account it bound, in one transaction."""
        now = self.clock.now()
        with self.db.write() as session:
            row = store.eab_by_kid(session, kid[:64])
            if row is None:
                raise CAError(Kind.NOT_FOUND, f"No EAB key '{kid[:64]}'; 'ca-service eab list' shows them.")
            if not store.revoke_eab(session, row.id, now):
                raise CAError(Kind.CONFLICT, f"The EAB key '{row.kid}' is already revoked.")
            if row.account_id is not None:
                store.update_account(session, row.account_id, status="deactivated")
            audit.record(
                session,
                actor=actor,
                action="acme.eab.revoke",
                detail={"kid": row.kid, "name": row.name, "account": row.account_id},
            )
            return _eab(store.eab_by_kid(session, row.kid) or row)

    def accounts(self, offset: int = 0, limit: int | None = None) -> tuple[list[AccountInfo], int]:
        """A page of the ACME accounts by id, and how many there are."""
        with self.db.read() as session:
            rows, total = store.account_listing(session, offset=offset, limit=limit)
            return [_account(r) for r in rows], total

    def deactivate(self, account_id: int, actor: str) -> AccountInfo:
        """Deactivate an account (RFC 8555 section 7.3.6): it can no longer order, finalize,
        download or revoke; its EAB key stays used."""
        with self.db.write() as session:
            rows, _ = store.account_listing(session, account_id=account_id)
            if not rows:
                raise CAError(
                    Kind.NOT_FOUND,
                    f"No ACME account {account_id}; 'ca-service acme accounts list' shows them.",
                )
            if rows[0].account.status == "deactivated":
                raise CAError(Kind.CONFLICT, f"ACME account {account_id} is already deactivated.")
            store.update_account(session, account_id, status="deactivated")
            audit.record(
                session, actor=actor, action="acme.account.deactivate", detail={"account": account_id}
            )
            rows, _ = store.account_listing(session, account_id=account_id)
            return _account(rows[0])
