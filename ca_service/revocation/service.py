"""Revoking certificates and publishing CRLs (RFC 5280 sections 5 and 6.3).

A revocation is one short write transaction: the certificate row flips to revoked, the issuer's
CRL row counts one more pending revocation, the audit entry is written. The CRL is not rebuilt in
the request: each worker's :class:`~ca_service.revocation.publisher.Publisher` is poked and
regenerates it in the background, and only the worker holding the issuer's database lease does
so. CRL numbers come from ``UPDATE ... SET number = number + 1`` and a stored CRL is never
replaced by one with a lower number.

The root's CRL goes the same way when the root key is in our key store: revoking an issuing CA
(:meth:`Revocation.revoke_issuer`) counts a pending revocation against the root, whose CRL the
publishers regenerate under the root's lease. An external root's CRL is imported instead
(:meth:`Revocation.import_crl`), checked against the root and never lower in number.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.orm import Session

from ca_service.authority.crl import assemble_crl, check_crl_of, crl_pem, entry_der, read_crl, sign_crl
from ca_service.clock import SYSTEM, Clock
from ca_service.config import Settings
from ca_service.domain import (
    IssuerRole,
    IssuerState,
    MacAddress,
    Principal,
    Role,
    in_utc,
    parse_serial,
    serial_text,
)
from ca_service.errors import CAError, Kind
from ca_service.issuers import CA, Directory, Signers
from ca_service.policy import WRITERS, check_scope, device_mac, in_scope, require_role
from ca_service.policy.reasons import CODES, parse_ca_reason, parse_reason, reason_flag, reason_name
from ca_service.revocation.files import CrlFiles
from ca_service.store import Database, audit
from ca_service.store import certificates as certs
from ca_service.store import issuers as cas_store
from ca_service.store import revocations as store
from ca_service.store.certificates import CertificateRecord, Write
from ca_service.store.db import DatabaseUnavailable

log = logging.getLogger("ca_service.revocation")

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
# who revokes replaced certificates after their grace period (ca-service renewals revoke-superseded)
SUPERSEDER = Principal(name="renewal", role=Role.ADMIN)
ENCODE_CHUNK = 5_000  # CRL entries encoded per write transaction


@dataclass(frozen=True)
class Revoked:
    serial: str
    mac: str
    revoked_at: datetime
    reason: str
    invalidity_date: datetime | None


@dataclass(frozen=True)
class PublishedCrl:
    """A published CRL: its issuer, number and the times for HTTP caching."""

    issuer: str
    number: int
    this_update: datetime
    next_update: datetime


@dataclass(frozen=True)
class ServedCrl(PublishedCrl):
    """A published CRL as this host serves it: from its files (:mod:`.files`), DER and PEM."""

    issuer_id: int
    files: CrlFiles = field(repr=False, compare=False)

    def file(self, fmt: str) -> Path:
        """The file of ``fmt``: ``crl`` (DER) or ``pem`` (made on first use)."""
        if fmt == "pem":
            return self.files.pem(self.issuer_id, self.number)
        return self.files.path(self.issuer_id, self.number, "crl")

    @property
    def on_disk(self) -> bool:
        return self.files.has(self.issuer_id, self.number)

    @property
    def der(self) -> bytes:
        return self.file("crl").read_bytes()


@dataclass(frozen=True)
class RevokedIssuer:
    """An issuing CA revoked by its root; ``in_root_crl`` when our root signs the CRL that lists
    it (an external root must revoke it in its own CRL)."""

    name: str
    serial: str
    revoked_at: datetime
    reason: str
    in_root_crl: bool


@dataclass(frozen=True)
class CrlHealth:
    issuer: str
    number: int | None
    this_update: datetime | None
    next_update: datetime | None
    pending: int  # revocations not yet in the published CRL
    entries: int
    oldest_pending: datetime | None = None
    imported: bool = False  # an external root's CRL: signed elsewhere, imported by the operator

    def past_next_update(self, now: datetime) -> bool:
        return self.next_update is None or self.next_update <= now

    def import_due(self, now: datetime, warn: timedelta) -> bool:
        """An imported CRL that is missing or within ``warn`` of its nextUpdate."""
        return self.imported and (self.next_update is None or self.next_update - now <= warn)

    def waiting(self, now: datetime) -> float:
        """Seconds the oldest revocation missing from the published CRL has waited (0: none)."""
        return max(0.0, (now - self.oldest_pending).total_seconds()) if self.oldest_pending else 0.0


class Revocation:
    """Revocation on behalf of a principal, and CRL publication. One instance per worker."""

    def __init__(
        self, db: Database, directory: Directory, signers: Signers, settings: Settings, clock: Clock = SYSTEM
    ) -> None:
        self.db = db
        self.directory = directory
        self.signers = signers
        self.settings = settings
        self.clock = clock
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._served: dict[int, ServedCrl] = {}
        self.files = CrlFiles(settings.home / "crl")
        self._served_lock = threading.Lock()
        self._held: set[int] = set()  # issuer ids whose publication lease this worker holds
        self.on_revoke: list[Callable[[], None]] = []  # called after a committed revocation

    # -- revoking: one core behind every entry point ------------------------------------------
    def revoke(
        self,
        serial_given: str,
        reason: str,
        invalidity_date: datetime | None,
        principal: Principal,
        via: str = "rest",
        also: tuple[Write, ...] = (),
    ) -> Revoked:
        """Revoke one certificate by serial. 404 when unknown or outside the principal's scope,
        409 when it is already revoked (never a second entry). The writes in ``also`` join the
        revoking transaction (with the serial)."""
        serial = parse_serial(serial_given)

        def find(session: Session) -> list[CertificateRecord]:
            found = certs.by_serial(session, serial)
            if found is None:
                raise CAError(Kind.NOT_FOUND, f"No certificate with serial {serial}.")
            return [found]

        return self._revoke(find, reason, invalidity_date, principal, via, single=True, also=also)[0]

    def revoked(self, serials: list[str]) -> list[Revoked]:
        """The recorded revocations of ``serials`` (what an idempotent retry answers)."""
        with self.db.read() as session:
            rows = [certs.by_serial(session, s) for s in serials]
        return [
            Revoked(r.serial, r.mac, r.revoked_at, r.revocation_reason or "unspecified", r.invalidity_date)
            for r in rows
            if r is not None and r.revoked_at is not None
        ]

    def revoke_presented(
        self,
        der: bytes,
        reason_code: int,
        principal: Principal | None = None,
        signer_key: PublicKey | None = None,
        via: str = "acme",
    ) -> Revoked:
        """Revoke the certificate the requester sent (DER, RFC 8555 section 7.6), by an RFC 5280
        reason code. It must be one we issued, byte for byte. The requester is an account
        (``principal``) or proved possession of the certificate's key (``signer_key`` signed
        the request): then it may revoke that certificate and no other. The requester holds
        the certificate, so a scope refusal is FORBIDDEN rather than NOT_FOUND."""
        if reason_code not in CODES:
            raise CAError(
                Kind.BAD_REVOCATION_REASON,
                f"Reason code {reason_code} is not allowed; use one of {sorted(CODES)}.",
            )
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise CAError(Kind.MALFORMED, "The certificate is not DER.") from exc
        serial = serial_text(cert.serial_number)
        if principal is None:
            spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            if signer_key is None or cert.public_key().public_bytes(*spki) != signer_key.public_bytes(*spki):
                raise CAError(Kind.FORBIDDEN, "Only an account or the certificate's own key may revoke it.")
            principal = Principal(f"certificate-key:{serial}", Role.PROVISIONER, certificate=serial)

        def find(session: Session) -> list[CertificateRecord]:
            found = certs.by_serial(session, serial)
            if found is None or found.der != der:
                raise CAError(Kind.NOT_FOUND, "This certificate was not issued by this CA.")
            return [found]

        return self._revoke(find, CODES[reason_code], None, principal, via, single=True, presented=True)[0]

    def revoke_device(
        self,
        mac_text: str,
        reason: str,
        invalidity_date: datetime | None,
        principal: Principal,
        via: str = "rest",
        also: tuple[Write, ...] = (),
    ) -> list[Revoked]:
        """Revoke every unexpired, unrevoked certificate of a device (all in one transaction;
        ``also`` joins it, with the serials comma-separated)."""
        mac = device_mac(mac_text)
        check_scope(principal, mac)

        def find(session: Session) -> list[CertificateRecord]:
            if certs.device(session, mac.value) is None:
                raise CAError(Kind.NOT_FOUND, f"No device {mac}.")
            found = certs.unexpired_valid(session, mac.value, self.clock.now())
            if not found:
                raise CAError(Kind.CONFLICT, f"Device {mac} has no unexpired certificate left to revoke.")
            return found

        return self._revoke(find, reason, invalidity_date, principal, via, single=False, also=also)

    def revoke_superseded(self) -> list[Revoked]:
        """Revoke (reason superseded) valid certificates whose successor is older than
        ``revoke_superseded_after_hours``; nothing when that setting is 0 (the default)."""
        hours = self.settings.revoke_superseded_after_hours
        if hours <= 0:
            return []
        before = self.clock.now() - timedelta(hours=hours)
        return self._revoke(
            lambda session: certs.superseded(session, before),
            "superseded",
            None,
            SUPERSEDER,
            "renewal",
            single=False,
        )

    def _revoke(
        self,
        find: Callable[[Session], list[CertificateRecord]],
        reason: str,
        invalidity_date: datetime | None,
        principal: Principal,
        via: str,
        *,
        single: bool,
        presented: bool = False,
        also: tuple[Write, ...] = (),
    ) -> list[Revoked]:
        """The one revocation: role check, reason and invalidity date checked, the candidates
        ``find`` returns filtered by the principal's scope, each flipped to revoked with its
        audit entry in one transaction; after the commit each is logged and the CRL publisher is
        woken. With ``single`` the one candidate must be revocable (404/403 outside the scope,
        409 when already revoked)."""
        require_role(principal, WRITERS, "Revoking")
        reason = parse_reason(reason)
        now = self.clock.now()
        invalidity = self._invalidity(invalidity_date, now)
        done: list[Revoked] = []
        with self.db.write() as session:
            for cert in find(session):
                if not in_scope(principal, MacAddress(cert.mac), cert.serial):
                    if not single:
                        continue
                    if presented:
                        raise CAError(Kind.FORBIDDEN, "This account may not revoke this certificate.")
                    raise CAError(Kind.NOT_FOUND, f"No certificate with serial {cert.serial}.")
                if invalidity is not None and invalidity < cert.not_before:
                    raise CAError(
                        Kind.MALFORMED,
                        f"The invalidity date is before certificate {cert.serial} was valid "
                        f"(notBefore {cert.not_before:%Y-%m-%dT%H:%M:%SZ}); its key cannot have been "
                        "compromised earlier.",
                    )
                if cert.status == "revoked" or not store.mark_revoked(
                    session, cert.serial, now, reason, invalidity
                ):
                    if single:
                        raise CAError(
                            Kind.ALREADY_REVOKED,
                            f"Certificate {cert.serial} is already revoked.",
                            serial=cert.serial,
                        )
                    continue
                item = Revoked(cert.serial, cert.mac, now, reason, invalidity)
                audit.record(
                    session,
                    actor=principal.label,
                    action="certificate.revoke",
                    mac=item.mac,
                    serial=item.serial,
                    detail={
                        "reason": item.reason,
                        "invalidity_date": item.invalidity_date.isoformat() if item.invalidity_date else None,
                        "via": via,
                    },
                    at=now,
                )
                done.append(item)
            for write in also:
                write(session, ",".join(item.serial for item in done))
        for item in done:
            log.info(
                "certificate revoked",
                extra={
                    "serial": item.serial,
                    "mac": item.mac,
                    "reason": item.reason,
                    "actor": principal.label,
                },
            )
        if done:
            for poke in self.on_revoke:
                poke()
        return done

    @staticmethod
    def _invalidity(value: datetime | None, now: datetime) -> datetime | None:
        """RFC 5280 5.3.2: when the key is known or suspected compromised; in UTC, not in the
        future (and, checked per certificate, not before its notBefore)."""
        if value is None:
            return None
        value = in_utc(value, "The invalidity date")
        if value > now:
            raise CAError(Kind.MALFORMED, "The invalidity date may not be in the future.")
        return value

    # -- publishing -------------------------------------------------------------------------
    def publish_due(self, force: bool = False) -> bool:
        """Regenerate every CRL that misses a revocation, is unpublished, or is older than
        ``crl_refresh_seconds``, if this worker wins the issuer's lease. Returns True when some
        due CRL was left to another worker's live lease (call again shortly)."""
        left = False
        for issuer_id in self._signed_here():
            with self.db.read() as session:
                state = store.crl_states(session, issuer_id).get(issuer_id)
            if not (force or self._due(state, self.clock.now())):
                continue
            with self.lease(issuer_id) as held:
                if not held:
                    left = True
                    continue
                self.regenerate(issuer_id)
        return left

    @contextmanager
    def lease(self, issuer_id: int) -> Iterator[bool]:
        """Hold the issuer's publication lease for the block (yields False when another worker
        holds a live one). The lease is short (``crl_lease_seconds``) and renewed by a heartbeat
        thread while the block runs, released when it ends and on shutdown
        (:meth:`release_leases`), so a worker killed mid-build blocks the others for one lease
        at most; a late writer's CRL is still refused by its number (fencing)."""
        seconds = self.settings.crl_lease_seconds
        now = self.clock.now()
        with self.db.write() as session:
            held = store.take_lease(session, issuer_id, self.owner, now, now + timedelta(seconds=seconds))
        if not held:
            yield False
            return
        done = threading.Event()
        self._held.add(issuer_id)

        def heartbeat() -> None:
            while not done.wait(seconds / 3):
                try:
                    with self.db.write() as session:
                        until = self.clock.now() + timedelta(seconds=seconds)
                        if not store.renew_lease(session, issuer_id, self.owner, until):
                            log.warning("CRL lease lost", extra={"issuer_id": issuer_id})
                            return
                except CAError as exc:  # the database is away: the lease runs out by itself
                    log.warning("CRL lease not renewed", extra={"issuer_id": issuer_id, "detail": exc.detail})

        beat = threading.Thread(target=heartbeat, name=f"crl-lease-{issuer_id}", daemon=True)
        beat.start()
        try:
            yield True
        finally:
            done.set()
            beat.join(timeout=seconds)
            self._release(issuer_id)

    def _release(self, issuer_id: int) -> None:
        self._held.discard(issuer_id)
        try:
            with self.db.write() as session:
                store.release_lease(session, issuer_id, self.owner)
        except CAError as exc:  # it expires on its own shortly
            log.warning("CRL lease not released", extra={"issuer_id": issuer_id, "detail": exc.detail})

    def release_leases(self) -> None:
        """Give up every lease this worker holds (gunicorn's worker exit hook calls this)."""
        for issuer_id in list(self._held):
            self._release(issuer_id)

    def _due(self, state: store.CrlState | None, now: datetime) -> bool:
        """Unpublished, missing a revocation, or old enough for the schedule (or past nextUpdate)."""
        if state is None or state.published_number is None or state.pending:
            return True
        assert state.this_update is not None and state.next_update is not None
        refresh = timedelta(seconds=self.settings.crl_refresh_seconds)
        return bool(min(state.this_update + refresh, state.next_update) <= now)

    def _signed_here(self) -> dict[int, CA]:
        """The CAs whose CRL this service signs: every issuing CA that signs, and the root when
        its key is in our key store (its CRL lists the issuing CAs it revoked)."""
        cas = self.directory.get()
        root = cas.root
        local_root = {root.id: root} if root.state is IssuerState.ACTIVE and root.record.key_uri else {}
        return {**cas.signing, **local_root}

    def regenerate(self, issuer_id: int) -> int:
        """Build, sign and store the full CRL of one issuer; returns its CRL number. The caller
        holds the lease; the number is taken first so that it is never reused. The pending
        revocations are read before the entries are encoded and read, and only those are marked
        published. An issuing CA's CRL is assembled from the stored entry DER (streamed, never all
        rows at once) and signed with the issuer's key. A root's CRL lists the issuing CAs it
        revoked and carries no issuing distribution point (RFC 5280 5.2.5: it covers every
        certificate the root issued, and older issuing CAs name no CRL)."""
        issuer = self.signers.for_id(issuer_id)
        root = self.directory.get().cas[issuer_id].record.role is IssuerRole.ROOT
        with self.db.write() as session:
            store.ensure_crl_row(session, issuer_id)
            number = store.next_number(session, issuer_id)
        this_update = self.clock.now().replace(microsecond=0)
        next_update = this_update + timedelta(seconds=self.settings.crl_lifetime_seconds)
        cutoff = this_update if self.settings.crl_drop_expired else None
        with self.db.read() as session:
            covered = store.pending_ids(session, issuer_id)
        der: bytes | bytearray
        if root:
            with self.db.read() as session:
                revoked = [
                    (x509.load_pem_x509_certificate(pem.encode()).serial_number, at, reason_flag(r), None)
                    for pem, at, r in store.revoked_cas(session, issuer_id)
                ]
            with self.signers.signing(issuer):
                der, count = sign_crl(
                    issuer, number, this_update, next_update, revoked, user_certificates=False
                )
        else:
            self._encode_entries(issuer_id)
            with self.db.read() as session:
                batches = store.entry_batches(session, issuer_id, cutoff)
                with self.signers.signing(issuer):
                    der, count = assemble_crl(issuer, number, this_update, next_update, batches)
        with self.db.write() as session:
            stored = store.store_crl(
                session,
                issuer_id,
                number=number,
                covered=covered,
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
        if stored:  # the workers of this host serve it from these files, without a read
            self.files.write(issuer_id, number, der)
        log.info(
            "CRL published" if stored else "CRL discarded: a newer one is published",
            extra={"issuer": issuer.name, "number": number, "entries": count, "bytes": len(der)},
        )
        return number

    def _encode_entries(self, issuer_id: int) -> None:
        """Encode and store the CRL entry of every revoked certificate of the issuer that has
        none yet (RFC 5280 5.1.2.6), ``ENCODE_CHUNK`` per short write transaction: the
        revocations since the last CRL, and once after migration 0014 every older one."""
        while True:
            with self.db.write() as session:
                todo = store.unencoded_entries(session, issuer_id, ENCODE_CHUNK)
                store.store_entries(
                    session,
                    [
                        (cid, entry_der(int(serial, 16), at, reason_flag(reason), inv))
                        for cid, serial, at, reason, inv in todo
                    ],
                )
            if len(todo) < ENCODE_CHUNK:
                return

    # -- the hierarchy: issuing CAs revoked by the root, an external root's CRL ---------------
    def revoke_issuer(self, name: str, reason: str, actor: str = "cli") -> RevokedIssuer:
        """Revoke one of our issuing CAs on behalf of its root (RFC 5280 5.3.1 reason by name,
        cACompromise rather than keyCompromise). From the commit on it signs nothing: issuance
        refuses it in the issuing transaction, OCSP and CRL publication leave it. When our root's
        key is here, the root CRL lists it (regenerated by the publisher, as any CRL)."""
        reason = parse_ca_reason(reason)
        now = self.clock.now()
        with self.db.write() as session:
            record = cas_store.by_name(session, name)
            if record is None or record.role is not IssuerRole.ISSUING:
                raise CAError(Kind.NOT_FOUND, f"No issuing CA named '{name[:64]}'.")
            if record.certificate_pem is None:
                raise CAError(Kind.CONFLICT, f"{record.name} has no certificate yet: nothing to revoke.")
            if not cas_store.revoke(session, record.id, now, reason):
                raise CAError(Kind.ALREADY_REVOKED, f"The issuing CA {record.name} is already revoked.")
            serial = serial_text(
                x509.load_pem_x509_certificate(record.certificate_pem.encode()).serial_number
            )
            parent = cas_store.by_id(session, record.parent_id) if record.parent_id is not None else None
            here = parent is not None and parent.state is IssuerState.ACTIVE and bool(parent.key_uri)
            if here:
                assert parent is not None
                store.add_pending(session, parent.id, serial, now)
            audit.record(
                session,
                actor=actor,
                action="ca.revoke",
                serial=serial,
                detail={"issuing": record.name, "reason": reason, "in_root_crl": here},
                at=now,
            )
        log.warning("issuing CA revoked", extra={"issuer": record.name, "serial": serial, "reason": reason})
        self.directory.invalidate()
        for poke in self.on_revoke:
            poke()
        return RevokedIssuer(record.name, serial, now, reason, here)

    def import_crl(self, data: bytes, actor: str = "cli") -> PublishedCrl:
        """Publish a CRL that an external (offline) root signed: it must verify with one of our
        external roots (issuer name, key identifier, signature), be complete, not yet past its
        nextUpdate, and have a higher CRL number than the one published (RFC 5280 5.2.3: numbers
        only grow; the database refuses a lower one also against a concurrent import). Issuing
        CAs of ours that it lists become revoked in the same transaction."""
        crl = read_crl(data)
        cas = self.directory.get()
        roots = [c for c in cas.cas.values() if c.record.role is IssuerRole.ROOT]
        root = next((c for c in roots if c.certificate.subject == crl.issuer), None)
        if root is None:
            raise CAError(
                Kind.CONFLICT,
                f"The CRL was issued by '{crl.issuer.rfc4514_string()[:120]}', which is not our root.",
            )
        number = check_crl_of(crl, root.certificate)
        if root.record.key_uri:
            raise CAError(
                Kind.CONFLICT,
                f"The root {root.name} signs its own CRL here; import is for an external root.",
            )
        now = self.clock.now()
        assert crl.next_update_utc is not None  # check_crl_of
        if crl.next_update_utc <= now:
            raise CAError(
                Kind.CONFLICT, f"The CRL is past its nextUpdate ({crl.next_update_utc:%Y-%m-%dT%H:%M:%SZ})."
            )
        der = crl.public_bytes(serialization.Encoding.DER)
        listed = {r.serial_number: r for r in crl}
        with self.db.write() as session:
            state = store.crl_states(session, root.id).get(root.id)
            store.ensure_crl_row(session, root.id)
            stored = store.store_crl(
                session,
                root.id,
                number=number,
                covered=[],
                der=der,
                entries=len(listed),
                this_update=crl.last_update_utc,
                next_update=crl.next_update_utc,
            )
            if not stored:
                published = state.published_number if state is not None else None
                raise CAError(
                    Kind.CONFLICT,
                    f"The CRL has number {number}, not above the published CRL number {published}: "
                    "a root CRL is never replaced by an older one.",
                )
            revoked = []
            for ca in cas.issuing.values():
                entry = listed.get(ca.certificate.serial_number)
                if ca.record.parent_id == root.id and entry is not None:
                    reason = next(
                        (e.value.reason for e in entry.extensions if isinstance(e.value, x509.CRLReason)),
                        None,
                    )
                    at = entry.revocation_date_utc
                    if cas_store.revoke(session, ca.id, at, reason_name(reason)):
                        revoked.append(ca.name)
            audit.record(
                session,
                actor=actor,
                action="crl.import",
                detail={"issuer": root.name, "number": number, "entries": len(listed), "revoked": revoked},
            )
        log.info("root CRL imported", extra={"issuer": root.name, "number": number, "revoked": revoked})
        if revoked:
            self.directory.invalidate()
        return PublishedCrl(root.name, number, crl.last_update_utc, crl.next_update_utc)

    # -- serving ----------------------------------------------------------------------------
    def published(self, issuer_name: str) -> ServedCrl:
        """The stored CRL of an issuer, served from its files on this host (written from the
        database once per CRL number). While the database cannot answer, the CRL this worker
        served last is served until its nextUpdate (relying parties may cache it that long)."""
        issuer_id = self._serving_id(issuer_name)
        cached = self._served.get(issuer_id)
        try:
            with self.db.read() as session:
                number = self._published_number(session, issuer_id, issuer_name)
                if cached is not None and cached.number == number and cached.on_disk:
                    return cached
                row = store.published_crl(session, issuer_id, with_der=False)
                if not self.files.has(issuer_id, row.number):
                    row = store.published_crl(session, issuer_id)
        except DatabaseUnavailable:
            if cached is not None and cached.next_update > self.clock.now() and cached.on_disk:
                return cached
            raise
        if row.der is not None:
            self.files.write(issuer_id, row.number, row.der)
        crl = ServedCrl(issuer_name, row.number, row.this_update, row.next_update, issuer_id, self.files)
        with self._served_lock:
            self._served[issuer_id] = crl
        return crl

    def stored_pem(self, issuer_name: str) -> tuple[PublishedCrl, bytes]:
        """The published CRL of an issuer and its PEM, read from the database: how the CLI
        reads it (it writes no files into the service's home)."""
        issuer_id = self._serving_id(issuer_name)
        with self.db.read() as session:
            self._published_number(session, issuer_id, issuer_name)
            row = store.published_crl(session, issuer_id)
        return PublishedCrl(issuer_name, row.number, row.this_update, row.next_update), crl_pem(row.der)

    def _serving_id(self, issuer_name: str) -> int:
        found = [ca for ca in self._served_cas() if ca.name == issuer_name]
        if not found:
            raise CAError(Kind.NOT_FOUND, f"No CA named '{issuer_name[:64]}' publishes a CRL here.")
        return found[0].id

    def _published_number(self, session: Session, issuer_id: int, issuer_name: str) -> int:
        """The number of the issuer's published CRL; NOT_FOUND or UNAVAILABLE, with the reason,
        when there is none."""
        state = store.crl_states(session, issuer_id).get(issuer_id)
        if state is not None and state.published_number is not None:
            return int(state.published_number)
        signed_here = issuer_id in self._signed_here()
        if self.directory.get().cas[issuer_id].record.role is IssuerRole.ROOT and not signed_here:
            raise CAError(
                Kind.NOT_FOUND, f"No CRL of {issuer_name} has been imported; run 'ca-service crl import'."
            )
        if not signed_here:
            raise CAError(Kind.NOT_FOUND, f"{issuer_name} published no CRL before it was revoked.")
        raise CAError(Kind.UNAVAILABLE, f"The CRL of {issuer_name} is not published yet; retry shortly.")

    def _served_cas(self) -> list[CA]:
        """The CAs whose CRL is served: those signed here, the newest root (also an external
        one, with the CRL imported), and revoked issuing CAs (their last CRL)."""
        cas = self.directory.get()
        revoked = {k: c for k, c in cas.issuing.items() if c.state is IssuerState.REVOKED}
        return list({**self._signed_here(), cas.root.id: cas.root, **revoked}.values())

    def health(self) -> list[CrlHealth]:
        """CRL state of every CA whose CRL is signed here, and of an external root (imported
        CRL), for /healthz and /metrics."""
        cas = self.directory.get()
        here = self._signed_here()
        with self.db.read() as session:
            states = store.crl_states(session)
        out = []
        for issuer_id, issuer in {**here, cas.root.id: cas.root}.items():
            st = states.get(issuer_id) or store.CrlState(issuer_id, None, 0, None, None)
            out.append(
                CrlHealth(
                    issuer.name,
                    st.published_number,
                    st.this_update,
                    st.next_update,
                    st.pending,
                    st.entries,
                    st.oldest_pending,
                    imported=issuer_id not in here,
                )
            )
        return out

    def health_check(self) -> str:
        """'ok', or a sentence naming each CRL that is unpublished, past its nextUpdate, or
        missing a revocation for longer than ``crl_stale_after_seconds``."""
        now = self.clock.now()
        bound = self.settings.crl_stale_after_seconds
        problems = []
        for h in self.health():
            if h.imported:  # signed elsewhere: warnings (details), not our unreadiness
                continue
            if h.number is None:
                problems.append(f"the CRL of {h.issuer} is not published")
            elif h.past_next_update(now):
                problems.append(
                    f"the CRL of {h.issuer} is past its nextUpdate ({h.next_update:%Y-%m-%dT%H:%M:%SZ})"
                )
            elif h.waiting(now) > bound:
                problems.append(
                    f"the CRL of {h.issuer} misses {h.pending} revocation(s), the oldest for "
                    f"{h.waiting(now):.0f} s (allowed: {bound} s)"
                )
        if not problems:
            return "ok"
        text = "; ".join(problems)
        return text[0].upper() + text[1:] + "."

    def warnings(self) -> list[str]:
        """Sentences for an external root's CRL that is not imported, past its nextUpdate, or
        within ``root_crl_warn_days`` of it: only the operator can import a new one."""
        now = self.clock.now()
        out = []
        for h in self.health():
            if not h.import_due(now, self.warn_before):
                continue
            if h.next_update is None:
                out.append(
                    f"No CRL of the external root {h.issuer} is imported; run 'ca-service crl import'."
                )
            else:
                verb = "was due" if h.next_update <= now else "is due"
                out.append(
                    f"The CRL of the external root {h.issuer} {verb} for renewal at its nextUpdate "
                    f"{h.next_update:%Y-%m-%dT%H:%M:%SZ}; sign a new one and run 'ca-service crl import'."
                )
        return out

    @property
    def warn_before(self) -> timedelta:
        return timedelta(days=self.settings.root_crl_warn_days)
