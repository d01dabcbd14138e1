"""The ACME registration authority (RFC 8555): nonces, EAB keys, accounts, orders, finalize,
The web layer (``ca_service.acme``) verifies JWS and speaks HTTP; this module decides and
stores. A refusal is a CAError whose kind the ACME renderer maps to an RFC 8555 section 6.7 type.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ca_service.config import Settings
from ca_service.domain import IssuedCertificate, MacAddress, Principal, Role
from ca_service.enrollment.nonces import Nonces
from ca_service.enrollment.service import Enrollment
from ca_service.errors import CAError, Kind, Subproblem
from ca_service.keystore.wrapping import wrapping_key
from ca_service.policy import device_mac, in_scope
from ca_service.policy.scope import normalize_scope
from ca_service.renewal.certid import parse_cert_id
from ca_service.store import Database, audit, on_commit
from ca_service.store import acme as store
from ca_service.store import certificates as certs

log = logging.getLogger("ca_service.enrollment")

IDENTIFIER_TYPES = ("permanent-identifier", "dns")
SIGNERS_KEPT = 4096  # accounts whose key a worker keeps to verify requests without a read
# refusals of a CSR's content; at finalize they are one badCSR (RFC 8555 section 7.4)
CSR_REFUSALS = (Kind.BAD_KEY, Kind.BAD_SIGNATURE_ALGORITHM, Kind.BAD_IDENTIFIER)
LEGACY_EAB_CONTEXT = b"acme-eab"  # associated data of EAB HMAC keys sealed before issue 13
UNBOUND_EAB = "EAB key sealed without its kid binding: run 'ca-service keys reseal'"


MAX_CONTACTS = 8
# RFC 8555 section 7.3: mailto URLs (RFC 6068) with one address each and no hfields ("?...")
_MAILTO = re.compile(
    r"mailto:[A-Za-z0-9.!#$&'*+/=^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
)


def check_contact(contact: object) -> list[str]:
    """An account's ``contact`` (RFC 8555 section 7.3): a list of at most MAX_CONTACTS
    ``mailto:`` URLs, one address each, no hfields. Other schemes (``javascript:``, ``tel:``,
    ``https:``) are refused, as the section allows, with ``invalidContact``."""
    if not isinstance(contact, list) or len(contact) > MAX_CONTACTS:
        raise CAError(Kind.INVALID_CONTACT, f"'contact' is a list of at most {MAX_CONTACTS} mailto: URLs.")
    for item in contact:
        if not isinstance(item, str) or not _MAILTO.fullmatch(item):
            raise CAError(
                Kind.INVALID_CONTACT,
                "Each contact is a mailto: URL with one e-mail address and nothing after it "
                "(e.g. mailto:ops@example.com); other schemes are refused.",
            )
    return list(contact)


def eab_context(kid: str) -> bytes:
    """Associated data of a sealed EAB HMAC key: it opens only in the row of its own kid."""
    return b"acme-eab|" + kid.encode()


@dataclass(frozen=True)
class EabKey:
    id: int
    kid: str
    hmac_key: bytes
    bound: bool


@dataclass(frozen=True)
class Account:
    id: int
    status: str
    contact: list[str]
    scopes: tuple[str, ...]
    jwk: dict[str, Any]
    thumbprint: str  # RFC 7638, of ``jwk``: what a key change alters

    @property
    def principal(self) -> Principal:
        """An ACME account acts like a provisioner scoped to its EAB key's MAC prefixes."""
        return Principal(
            name=f"acme-account-{self.id}", role=Role.PROVISIONER, scopes=self.scopes, acme_account=self.id
        )


@dataclass(frozen=True)
class Order:
    token: str
    account_id: int
    status: str
    mac: str
    identifiers: list[dict[str, str]]
    profile: str
    expires_at: datetime
    replaces: str | None
    serial: str | None
    created_at: datetime


def _account(row: store.AccountRecord) -> Account:
    return Account(
        row.id,
        row.status,
        list(row.contact or []),
        tuple(s for s in row.scopes.split(",") if s),
        json.loads(row.jwk),
        row.key_thumbprint,
    )


def _order(row: store.OrderRecord, now: datetime) -> Order:
    status = "invalid" if row.status == "ready" and row.expires_at <= now else row.status
    return Order(
        row.token,
        row.account_id,
        status,
        row.mac,
        list(row.identifiers),
        row.profile,
        row.expires_at,
        row.replaces,
        row.serial,
        row.created_at,
    )


BAD_NONCE = "The nonce is unknown, used or expired; retry with the Replay-Nonce given."
DEACTIVATED = "This account is deactivated."
NOT_VERIFIED = "The JWS signature does not verify with the account key."


@dataclass
class Redemption:
    """The nonce of a request whose JWS verified with ``signer``'s key, redeemed as the first
    write of the request's own transaction (RFC 8555 section 6.5; one transaction per request
    instead of two). A :data:`~ca_service.store.certificates.Write`; ``redeemed`` turns true
    inside that transaction."""

    authority: AcmeAuthority
    nonce: str
    signer: Account
    redeemed: bool = False

    def __call__(self, session: Session, serial: str | None = None) -> None:
        self.authority.redeem_signed(session, self.nonce, self.signer)
        on_commit(session, self._committed)

    def _committed(self) -> None:
        self.redeemed = True


class AcmeAuthority:
    """ACME state on behalf of the web layer; every change is audited in its transaction."""

    def __init__(self, db: Database, enrollment: Enrollment, settings: Settings) -> None:
        self.db = db
        self.enrollment = enrollment
        self.settings = settings
        self.clock = enrollment.clock
        self.nonces = Nonces(db, settings.acme_nonce_seconds, self.clock)
        self._signers: OrderedDict[int, Account] = OrderedDict()

    # -- nonces (section 6.5) ---------------------------------------------------------------
    def new_nonce(self) -> str:
        """A fresh nonce (no database write, see :mod:`ca_service.enrollment.nonces`)."""
        return self.nonces.mint()

    def check_nonce(self, presented: str) -> None:
        """Refuse a nonce we did not issue, or that expired, without touching the database."""
        if self.nonces.check(presented) is None:
            raise CAError(Kind.BAD_NONCE, BAD_NONCE)

    def redeem(self, presented: str, signer: Account | None) -> Account | None:
        """:meth:`redeem_in` in a transaction of its own, after :meth:`check_nonce`. The web
        layer redeems only for a request whose signature it verified with ``signer``'s key, so a
        forged request writes nothing."""
        self.check_nonce(presented)
        with self.db.write() as session:
            return self.redeem_in(session, presented, signer)

    def redeem_in(self, session: Session, presented: str, signer: Account | None) -> Account | None:
        """Redeem ``presented`` in ``session``'s transaction (badNonce when it was used) and
        return the signing account as it is now. The account is read again here, so its status,
        scopes and key are current on any host: when its key is no longer the one that verified
        the request (a key change elsewhere) or it is gone, the request does not verify."""
        if not self.nonces.redeem(session, presented):
            raise CAError(Kind.BAD_NONCE, BAD_NONCE)
        if signer is None:
            return None
        row = store.account(session, signer.id)
        current = _account(row) if row else None
        if current is None or current.jwk != signer.jwk:
            self._signers.pop(signer.id, None)
            raise CAError(Kind.MALFORMED, NOT_VERIFIED)
        self._keep(current)
        return current

    def redeem_signed(self, session: Session, presented: str, signer: Account) -> None:
        """Redeem ``presented`` in ``session``'s transaction for a request that ``signer``'s
        key verified: one statement while the account is valid with that key; when it inserts
        nothing, :meth:`redeem_in` finds out why (badNonce, another key, deactivated)."""
        if self.nonces.redeem(session, presented, (signer.id, signer.thumbprint)):
            return
        current = self.redeem_in(session, presented, signer)
        if current is not None and current.status != "valid":
            raise CAError(Kind.UNAUTHORIZED, DEACTIVATED)

    def account(self, account_id: int) -> Account | None:
        with self.db.read() as session:
            row = store.account(session, account_id)
            return _account(row) if row else None

    def signer(self, account_id: int, *, fresh: bool = False) -> Account | None:
        """The account whose key verifies a request's JWS: as this worker last saw it (no
        database read), or read now with ``fresh`` or on first use. Only the key is taken from
        here; :meth:`redeem_in` re-reads everything else inside its transaction."""
        kept = None if fresh else self._signers.get(account_id)
        if kept is not None:
            self._signers.move_to_end(account_id)
            return kept
        current = self.account(account_id)
        if current is None:
            self._signers.pop(account_id, None)
        else:
            self._keep(current)
        return current

    def _keep(self, account: Account) -> None:
        self._signers[account.id] = account
        self._signers.move_to_end(account.id)
        while len(self._signers) > SIGNERS_KEPT:
            self._signers.popitem(last=False)

    # -- external account binding keys (section 7.3.4) --------------------------------------
    def create_eab(self, name: str, scopes: tuple[str, ...], actor: str = "cli") -> tuple[str, str]:
        """A new EAB key for ``scopes``: returns (kid, base64url HMAC key). Shown once."""
        if not name or len(name) > 128:
            raise CAError(Kind.MALFORMED, "An EAB key name is 1 to 128 characters.")
        clean = tuple(normalize_scope(s) for s in scopes)
        if not clean:
            raise CAError(
                Kind.MALFORMED, "An EAB key needs at least one --scope (a MAC prefix such as 7C2F80)."
            )
        kid = "eab-" + secrets.token_urlsafe(12)
        key = secrets.token_bytes(32)
        with self.db.write() as session:
            if store.eab_by_name(session, name) is not None:
                raise CAError(Kind.CONFLICT, f"An EAB key named '{name}' already exists.")
            store.add_eab(
                session,
                kid=kid,
                name=name,
                scopes=",".join(clean),
                hmac_key=wrapping_key(self.settings).wrap(key, eab_context(kid)),
                created_at=self.clock.now(),
            )
            audit.record(
                session,
                actor=actor,
                action="acme.eab.create",
                detail={"name": name, "kid": kid, "scopes": list(clean)},
            )
        return kid, base64.urlsafe_b64encode(key).rstrip(b"=").decode()

    def eab_key(self, kid: str) -> EabKey:
        with self.db.read() as session:
            row = store.eab_by_kid(session, kid[:64]) if isinstance(kid, str) else None
            if row is None:
                raise CAError(Kind.UNAUTHORIZED, "The external account binding key id is unknown.")
            if row.revoked_at is not None:
                raise CAError(Kind.UNAUTHORIZED, "The external account binding key was revoked.")
            return EabKey(row.id, row.kid, self._open_eab(row), row.account_id is not None)

    def _open_eab(self, row: store.EabRecord) -> bytes:
        """The HMAC key of an EAB row, sealed bound to its kid; a key sealed before that binding
        (one fixed associated data) still opens, with a warning to reseal it."""
        wrapping = wrapping_key(self.settings)
        try:
            return wrapping.unwrap(row.hmac_key, eab_context(row.kid))
        except CAError:
            key = wrapping.unwrap(row.hmac_key, LEGACY_EAB_CONTEXT)
            log.warning(UNBOUND_EAB, extra={"kid": row.kid})
            return key

    def reseal_eab_keys(self) -> int:
        """Seal every EAB HMAC key sealed without its kid again, bound to its kid (``ca-service
        keys reseal``); returns how many were resealed."""
        wrapping = wrapping_key(self.settings)
        done = 0
        with self.db.write() as session:
            for row in store.all_eabs(session):
                try:
                    wrapping.unwrap(row.hmac_key, eab_context(row.kid))
                    continue
                except CAError:
                    key = wrapping.unwrap(row.hmac_key, LEGACY_EAB_CONTEXT)
                store.set_eab_hmac_key(session, row.id, wrapping.wrap(key, eab_context(row.kid)))
                done += 1
            if done:
                audit.record(session, actor="cli", action="acme.eab.reseal", detail={"keys": done})
        return done

    # -- accounts (section 7.3) -------------------------------------------------------------
    def account_by_thumbprint(self, thumbprint: str) -> Account | None:
        with self.db.read() as session:
            row = store.account_by_thumbprint(session, thumbprint)
            return _account(row) if row else None

    def new_account(self, jwk: dict[str, Any], thumbprint: str, eab: EabKey, contact: list[str]) -> Account:
        """Create the account bound to ``eab`` (whose HMAC the web layer verified)."""
        with self.db.write() as session:
            key = store.eab_by_kid(session, eab.kid)
            assert key is not None
            row = store.add_account(
                session,
                key_thumbprint=thumbprint,
                jwk=json.dumps(jwk, sort_keys=True),
                status="valid",
                contact=contact,
                eab_id=key.id,
                scopes=key.scopes,
                created_at=self.clock.now(),
            )
            if not store.bind_eab(session, key.id, row.id):
                raise CAError(
                    Kind.UNAUTHORIZED,
                    "This external account binding key is already bound to another account.",
                )
            audit.record(
                session,
                actor=f"acme-account-{row.id}",
                action="acme.account.create",
                detail={"kid": eab.kid, "thumbprint": thumbprint},
            )
            return _account(row)

    def update_account(self, account: Account, contact: list[str] | None, deactivate: bool) -> Account:
        with self.db.write() as session:
            changes: dict[str, object] = {}
            if contact is not None:
                changes["contact"] = contact
            if deactivate:
                changes["status"] = "deactivated"
            row = store.update_account(session, account.id, **changes)
            audit.record(
                session,
                actor=account.principal.label,
                action="acme.account.deactivate" if deactivate else "acme.account.update",
            )
            return _account(row)

    def change_key(self, account: Account, jwk: dict[str, Any], thumbprint: str) -> Account:
        """Section 7.3.5: the new key must not belong to another account."""
        with self.db.write() as session:
            other = store.account_by_thumbprint(session, thumbprint)
            if other is not None:
                raise CAError(Kind.CONFLICT, "The new key already belongs to an account.", account=other.id)
            row = store.update_account(
                session, account.id, jwk=json.dumps(jwk, sort_keys=True), key_thumbprint=thumbprint
            )
            audit.record(
                session,
                actor=account.principal.label,
                action="acme.account.key-change",
                detail={"thumbprint": thumbprint},
            )
            return _account(row)

    # -- orders (section 7.4) ---------------------------------------------------------------
    def _identifier_mac(self, account: Account, ident: object) -> MacAddress:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            raise CAError(Kind.MALFORMED, "An identifier is an object with 'type' and 'value'.")
        if ident.get("type") not in IDENTIFIER_TYPES:
            raise CAError(
                Kind.UNSUPPORTED_IDENTIFIER,
                "Only 'permanent-identifier' and 'dns' identifiers whose value is a device MAC "
                "are supported.",
            )
        mac = device_mac(ident["value"], self.settings.oui_allowlist, label="identifier")
        if not in_scope(account.principal, mac):
            raise CAError(
                Kind.REJECTED_IDENTIFIER,
                f"{mac} is outside the scope of this account's external account binding "
                f"({', '.join(account.scopes)}).",
            )
        return mac

    def new_order(
        self,
        account: Account,
        identifiers: object,
        profile: object = None,
        replaces: object = None,
        redeem: Redemption | None = None,
    ) -> Order:
        """One device per order: every identifier must name the same MAC within the account's
        EAB scope; the authorizations are then valid at once and the order is ``ready``. The
        request's nonce (``redeem``) is spent in the transaction that stores the order."""
        if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= 4:
            raise CAError(Kind.MALFORMED, "An order lists 1 to 4 identifiers of one device.")
        macs, subproblems = [], []
        for ident in identifiers:
            try:
                macs.append(self._identifier_mac(account, ident))
            except CAError as exc:
                about = ident if isinstance(ident, dict) else {"value": str(ident)[:64]}
                subproblems.append(Subproblem(exc.kind, exc.detail, about))
        if subproblems:
            first = subproblems[0]
            raise CAError(first.kind, first.detail, subproblems=tuple(subproblems))
        if len(set(macs)) != 1:
            raise CAError(
                Kind.BAD_IDENTIFIER,
                "All identifiers of an order must name the same device MAC; "
                "order one certificate per device.",
            )
        mac = macs[0]
        if profile not in (None, "") and not isinstance(profile, str):
            raise CAError(Kind.MALFORMED, "'profile' is a string.")
        chosen = self.settings.profile(profile or None)
        if replaces is not None:
            self._check_replaces(account, mac, replaces)
        now = self.clock.now()
        clean = [{"type": str(i["type"]), "value": str(i["value"])} for i in identifiers]  # type: ignore[index]
        with self.db.write() as session:
            if redeem is not None:
                redeem(session)
            row = store.add_order(
                session,
                token=secrets.token_urlsafe(16),
                account_id=account.id,
                mac=mac.value,
                identifiers=clean,
                profile=chosen.name,
                status="ready",
                replaces=replaces,
                expires_at=now + timedelta(days=self.settings.acme_order_days),
                created_at=now,
            )
            audit.record(
                session,
                actor=account.principal.label,
                action="acme.order.create",
                mac=mac.value,
                detail={"order": row.token, "profile": chosen.name, "replaces": replaces},
            )
            return _order(row, now)

    def _check_replaces(self, account: Account, mac: MacAddress, replaces: object) -> None:
        """RFC 9773 section 5: the replaced certificate is this account's, for the same device,
        and not replaced yet (checked again atomically at finalize)."""
        if not isinstance(replaces, str):
            raise CAError(Kind.MALFORMED, "'replaces' is a certID string.")
        _, serial = parse_cert_id(replaces)
        with self.db.read() as session:
            row = certs.by_serial(session, serial)
            origin = store.order_of_certificate(session, serial)
            if row is None or origin is None or origin.account_id != account.id:
                raise CAError(
                    Kind.UNAUTHORIZED,
                    "'replaces' must name a certificate issued to this account.",
                )
            if row.mac != mac.value:
                raise CAError(
                    Kind.MALFORMED,
                    f"The replaced certificate is for {row.mac}, not for this order's {mac}.",
                )
            if row.replaced_by is not None:
                raise CAError(Kind.ALREADY_REPLACED, f"Certificate {serial} has already been replaced.")

    @contextmanager
    def _reading(self, redeem: Redemption | None) -> Iterator[Session]:
        """The transaction a request reads in: with ``redeem``, a write that first spends the
        request's nonce (one transaction per request instead of two), else a read."""
        if redeem is None:
            with self.db.read() as session:
                yield session
        else:
            with self.db.write() as session:
                redeem(session)
                yield session

    def order(self, account: Account, token: str, redeem: Redemption | None = None) -> Order:
        with self._reading(redeem) as session:
            row = store.order(session, token[:32])
            if row is None or row.account_id != account.id:
                raise CAError(Kind.NOT_FOUND, "No such order for this account.")
            return _order(row, self.clock.now())

    def orders(self, account: Account) -> list[str]:
        with self.db.read() as session:
            return store.order_tokens(session, account.id)

    def finalize(
        self, account: Account, token: str, csr_der: bytes, redeem: Redemption | None = None
    ) -> Order:
        """Section 7.4: issue through :meth:`Enrollment.issue` (same policy and profile as REST);
        the order becomes valid, and the request's nonce (``redeem``) is spent, in the issuing
        transaction."""
        order = self.order(account, token)
        if order.status != "ready":
            raise CAError(Kind.ORDER_NOT_READY, f"The order is {order.status}, not ready.")

        def complete(session: Session, serial: str) -> None:
            if not store.complete_order(session, order.token, serial):
                raise CAError(Kind.ORDER_NOT_READY, "The order was finalized meanwhile.")

        try:
            cert = self.enrollment.issue(
                csr_der,
                account.principal,
                order.profile,
                replaces=parse_cert_id(order.replaces)[1] if order.replaces else None,
                expected_mac=MacAddress(order.mac),
                also=(complete,) if redeem is None else (redeem, complete),
            )
        except CAError as exc:
            if exc.kind in CSR_REFUSALS:  # section 7.4: whatever is wrong with the CSR is badCSR
                raise CAError(Kind.BAD_CSR, exc.detail) from exc
            raise
        return dataclasses.replace(order, status="valid", serial=cert.serial)

    def certificate(
        self, account: Account, serial: str, redeem: Redemption | None = None
    ) -> IssuedCertificate:
        with self._reading(redeem) as session:
            origin = store.order_of_certificate(session, serial[:42])
            row = certs.by_serial(session, serial[:42])
            if origin is None or origin.account_id != account.id or row is None:
                raise CAError(Kind.NOT_FOUND, "No such certificate for this account.")
            return self.enrollment.view(row)
