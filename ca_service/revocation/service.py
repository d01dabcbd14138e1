"""Revoking certificates and publishing CRLs (RFC 5280 sections 5 and 6.3).

A revocation is one short write transaction: the certificate row flips to revoked, the issuer's
CRL row counts one more pending revocation, the audit entry is written. The CRL is not rebuilt in
the request: each worker's :class:`~ca_service.revocation.publisher.Publisher` is poked and
regenerates it in the background, and only the worker holding the issuer's database lease does
so. CRL numbers come from ``UPDATE ... SET number = number + 1`` and a stored CRL is never
replaced by one with a lower number.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy.orm import Session

from ca_service.authority import parse_serial
from ca_service.authority.crl import crl_pem, sign_crl
from ca_service.config import Settings
from ca_service.domain import MacAddress, Principal, Role
from ca_service.errors import CAError, Kind
from ca_service.issuers import Directory, Signers
from ca_service.policy import check_scope, device_mac, in_scope
from ca_service.policy.reasons import parse_reason, reason_flag
from ca_service.store import Database, audit
from ca_service.store import certificates as certs
from ca_service.store import revocations as store

log = logging.getLogger("ca_service.revocation")


@dataclass(frozen=True)
class Revoked:
    serial: str
    mac: str
    revoked_at: datetime
    reason: str
    invalidity_date: datetime | None


@dataclass(frozen=True)
class PublishedCrl:
    """A stored CRL as served: DER bytes, their PEM armour, and the times for HTTP caching."""

    issuer: str
    number: int
    der: bytes
    this_update: datetime
    next_update: datetime

    @cached_property
    def pem(self) -> bytes:
        return crl_pem(self.der)


@dataclass(frozen=True)
class CrlHealth:
    issuer: str
    number: int | None
    this_update: datetime | None
    next_update: datetime | None
    pending: int  # revocations not yet in the published CRL
    entries: int

    def stale(self, now: datetime) -> bool:
        return self.next_update is None or self.next_update <= now


class Revocation:
    """Revocation on behalf of a principal, and CRL publication. One instance per worker."""

    def __init__(self, db: Database, directory: Directory, signers: Signers, settings: Settings) -> None:
        self.db = db
        self.directory = directory
        self.signers = signers
        self.settings = settings
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._served: dict[int, PublishedCrl] = {}
        self._served_lock = threading.Lock()
        self.on_revoke: list[Callable[[], None]] = []  # called after a committed revocation

    # -- revoking ---------------------------------------------------------------------------
    def revoke(
        self, serial_text: str, reason: str, invalidity_date: datetime | None, principal: Principal
    ) -> Revoked:
        """Revoke one certificate. 404 when unknown or outside the principal's scope, 409 when
        it is already revoked (never a second entry)."""
        self._may_write(principal)
        reason = parse_reason(reason)
        serial = parse_serial(serial_text)
        now = datetime.now(UTC)
        invalidity = self._invalidity(invalidity_date, now)
        with self.db.write() as session:
            row = certs.by_serial(session, serial)
            if row is None or not in_scope(principal, MacAddress(row.mac)):
                raise CAError(Kind.NOT_FOUND, f"No certificate with serial {serial}.")
            if row.status == "revoked" or not store.mark_revoked(session, serial, now, reason, invalidity):
                raise CAError(Kind.CONFLICT, f"Certificate {serial} is already revoked.", serial=serial)
            result = Revoked(serial, row.mac, now, reason, invalidity)
            self._audit(session, principal, result)
        self._revoked(result)
        return result

    def revoke_device(
        self, mac_text: str, reason: str, invalidity_date: datetime | None, principal: Principal
    ) -> list[Revoked]:
        """Revoke every unexpired, unrevoked certificate of a device (all in one transaction)."""
        self._may_write(principal)
        reason = parse_reason(reason)
        mac = device_mac(mac_text)
        check_scope(principal, mac)
        now = datetime.now(UTC)
        invalidity = self._invalidity(invalidity_date, now)
        done: list[Revoked] = []
        with self.db.write() as session:
            if certs.device(session, mac.value) is None:
                raise CAError(Kind.NOT_FOUND, f"No device {mac}.")
            for row in store.unexpired_valid(session, mac.value, now):
                if store.mark_revoked(session, row.serial, now, reason, invalidity):
                    done.append(Revoked(row.serial, row.mac, now, reason, invalidity))
                    self._audit(session, principal, done[-1])
            if not done:
                raise CAError(Kind.CONFLICT, f"Device {mac} has no unexpired certificate left to revoke.")
        for item in done:
            self._revoked(item)
        return done

    @staticmethod
    def _may_write(principal: Principal) -> None:
        if principal.role not in (Role.ADMIN, Role.PROVISIONER):
            raise CAError(Kind.FORBIDDEN, "Revoking needs an admin or provisioner token.")

    @staticmethod
    def _invalidity(value: datetime | None, now: datetime) -> datetime | None:
        """RFC 5280 5.3.2: when the key is known or suspected compromised; not in the future."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise CAError(
                Kind.MALFORMED, "The invalidity date needs a time zone (e.g. 2026-11-01T00:00:00Z)."
            )
        if value > now:
            raise CAError(Kind.MALFORMED, "The invalidity date may not be in the future.")
        return value.astimezone(UTC)

    @staticmethod
    def _audit(session: Session, principal: Principal, item: Revoked) -> None:
        audit.record(
            session,
            actor=principal.label,
            action="certificate.revoke",
            mac=item.mac,
            serial=item.serial,
            detail={
                "reason": item.reason,
                "invalidity_date": item.invalidity_date.isoformat() if item.invalidity_date else None,
            },
            at=item.revoked_at,
        )

    def _revoked(self, item: Revoked) -> None:
        log.info("certificate revoked", extra={"serial": item.serial, "mac": item.mac, "reason": item.reason})
        for poke in self.on_revoke:
            poke()

    # -- publishing -------------------------------------------------------------------------
    def publish_due(self, force: bool = False) -> bool:
        """Regenerate every CRL that misses a revocation, is unpublished, or is older than
        ``crl_refresh_seconds``, if this worker wins the issuer's lease. Returns True when some
        due CRL was left to another worker's live lease (call again shortly)."""
        left = False
        now = datetime.now(UTC)
        for issuer_id in self.directory.get().signing:
            with self.db.read() as session:
                state = store.crl_state(session, issuer_id)
            if not (force or self._due(state, now)):
                continue
            lease_until = now + timedelta(seconds=self.settings.crl_lease_seconds)
            with self.db.write() as session:
                got = store.take_lease(session, issuer_id, self.owner, now, lease_until)
            if not got:
                left = True
                continue
            try:
                self.regenerate(issuer_id)
            finally:
                with self.db.write() as session:
                    store.release_lease(session, issuer_id, self.owner)
        return left

    def _due(self, state: Any, now: datetime) -> bool:
        """Unpublished, missing a revocation, or old enough for the schedule (or past nextUpdate)."""
        if state is None or state.published_number is None or state.built_revision < state.revision:
            return True
        refresh = timedelta(seconds=self.settings.crl_refresh_seconds)
        return bool(min(state.this_update + refresh, state.next_update) <= now)

    def regenerate(self, issuer_id: int) -> int:
        """Build, sign and store the full CRL of one issuer; returns its CRL number. The caller
        holds the lease; the number is taken first so that it is never reused."""
        issuer = self.signers.for_id(issuer_id)
        with self.db.write() as session:
            store.ensure_crl_row(session, issuer_id)
            number, revision = store.next_number(session, issuer_id)
        this_update = datetime.now(UTC).replace(microsecond=0)
        next_update = this_update + timedelta(seconds=self.settings.crl_lifetime_seconds)
        cutoff = this_update if self.settings.crl_drop_expired else None
        with self.db.read() as session:
            rows = store.revoked_entries(session, issuer_id, cutoff)
            entries = ((int(s, 16), at, reason_flag(r), inv) for s, at, r, inv in rows)
            der, count = sign_crl(issuer, number, this_update, next_update, entries)
        with self.db.write() as session:
            stored = store.store_crl(
                session,
                issuer_id,
                number=number,
                revision=revision,
                der=der,
                entries=count,
                this_update=this_update,
                next_update=next_update,
            )
            if stored:
                audit.record(
                    session,
                    actor="system",
                    action="crl.publish",
                    detail={"issuer": issuer.name, "number": number, "entries": count, "bytes": len(der)},
                )
        log.info(
            "CRL published" if stored else "CRL discarded: a newer one is published",
            extra={"issuer": issuer.name, "number": number, "entries": count, "bytes": len(der)},
        )
        return number

    def root_crl(self, days: int) -> bytes:
        """A DER CRL signed by our root, valid ``days``, for relying parties that check CRLs along
        the whole chain (nginx's ``ssl_crl`` does). It lists no certificate: revoking an issuing CA
        is not supported. Needs the root key in our key store (not an external root)."""
        ca = self.directory.get().root
        if not ca.record.key_uri:
            raise CAError(
                Kind.CONFLICT, f"The root {ca.name} is external (offline): sign its CRL where its key is."
            )
        root = self.signers.issuer(ca)
        with self.db.write() as session:
            store.ensure_crl_row(session, ca.id)
            number, _ = store.next_number(session, ca.id)
            audit.record(
                session, actor="system", action="crl.root", detail={"issuer": ca.name, "number": number}
            )
        this_update = datetime.now(UTC).replace(microsecond=0)
        der, _ = sign_crl(
            root, number, this_update, this_update + timedelta(days=days), [], user_certificates=False
        )
        return der

    # -- serving ----------------------------------------------------------------------------
    def published(self, issuer_name: str) -> PublishedCrl:
        """The stored CRL of an issuer; the bytes are kept per worker until the number changes."""
        found = [k for k, ca in self.directory.get().signing.items() if ca.name == issuer_name]
        if not found:
            raise CAError(Kind.NOT_FOUND, f"No issuing CA named '{issuer_name[:64]}'.")
        issuer_id = found[0]
        with self.db.read() as session:
            state = store.crl_state(session, issuer_id)
            if state is None or state.published_number is None:
                raise CAError(
                    Kind.UNAVAILABLE, f"The CRL of {issuer_name} is not published yet; retry shortly."
                )
            cached = self._served.get(issuer_id)
            if cached is not None and cached.number == state.published_number:
                return cached
            row = store.published_crl(session, issuer_id)
        crl = PublishedCrl(issuer_name, row.number, row.der, row.this_update, row.next_update)
        with self._served_lock:
            self._served[issuer_id] = crl
        return crl

    def health(self) -> list[CrlHealth]:
        """CRL state of every signing issuer (for /healthz and /metrics)."""
        signing = self.directory.get().signing
        with self.db.read() as session:
            states = {s.issuer_id: s for s in store.crl_states(session)}
        out = []
        for issuer_id, issuer in signing.items():
            s = states.get(issuer_id)
            if s is None:
                out.append(CrlHealth(issuer.name, None, None, None, 0, 0))
                continue
            pending = max(0, s.revision - max(s.built_revision, 0))
            out.append(
                CrlHealth(issuer.name, s.published_number, s.this_update, s.next_update, pending, s.entries)
            )
        return out

    def health_check(self) -> str:
        """'ok', or a sentence naming each CRL that is unpublished or past its nextUpdate."""
        now = datetime.now(UTC)
        problems = [
            f"the CRL of {h.issuer} is not published"
            if h.number is None
            else f"the CRL of {h.issuer} is past its nextUpdate ({h.next_update:%Y-%m-%dT%H:%M:%SZ})"
            for h in self.health()
            if h.stale(now)
        ]
        if not problems:
            return "ok"
        text = "; ".join(problems)
        return text[0].upper() + text[1:] + "."
