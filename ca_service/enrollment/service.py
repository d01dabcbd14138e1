"""The registration authority: turns a request into a decision and a certificate.

The only module that calls policy, authority and store together. The issuance cycle (design
decision 6): policy passes -> certificate built and signed with a fresh random serial -> the
row (with its audit entry) committed -> only then returned. The serial is reserved by the
database's unique constraint at commit; a collision (p ~ 2^-159) discards the unreturned
certificate and signs again with a new serial.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.orm import Session

from ca_service.authority import random_serial
from ca_service.authority.issuer import pem
from ca_service.clock import SYSTEM, Clock
from ca_service.config import Settings
from ca_service.domain import (
    CertificateStatus,
    IssuedCertificate,
    MacAddress,
    Principal,
    Profile,
    in_utc,
    serial_text,
)
from ca_service.enrollment.limits import RateLimits
from ca_service.errors import CAError, Kind
from ca_service.issuers import REVOKED_ISSUER, Directory, Signers
from ca_service.metrics import CERTIFICATES_ISSUED, ISSUANCE_REFUSED
from ca_service.policy import (
    WRITERS,
    CsrRules,
    check_csr,
    check_scope,
    device_mac,
    in_scope,
    require_role,
)
from ca_service.store import Database, audit
from ca_service.store import certificates as certs
from ca_service.store import issuers as issuers_store
from ca_service.store.certificates import CertificateRecord, SerialTaken, Write

log = logging.getLogger("ca_service.enrollment")

SERIAL_ATTEMPTS = 3
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def record_refusal(
    db: Database, actor: str, action: str, mac: str | None, serial: str | None, reason: str
) -> None:
    """Audit a refused security-relevant request in its own transaction (the request's own
    transaction, if any, is rolled back)."""
    with db.write() as session:
        audit.record(
            session,
            actor=actor,
            action=action,
            outcome="refused",
            mac=mac,
            serial=serial,
            detail={"reason": reason},
        )
    log.info("refused", extra={"actor": actor, "action": action, "mac": mac, "reason": reason})


@dataclass(frozen=True)
class DeviceView:
    mac: str
    model: str | None
    firmware: str | None
    labels: dict[str, object]
    created_at: datetime | None
    certificates: list[IssuedCertificate]
    certificates_total: int = 0  # all of the device's certificates; ``certificates`` is a page


DEVICE_PAGE = 50  # certificates a device view carries unless asked for another page


class Enrollment:
    """Issuance and certificate queries on behalf of an authenticated principal."""

    def __init__(
        self, db: Database, directory: Directory, signers: Signers, settings: Settings, clock: Clock = SYSTEM
    ) -> None:
        self.db = db
        self.directory = directory
        self.signers = signers
        self.clock = clock
        self.settings = settings
        self.limits = RateLimits(db, settings, clock)
        self.rules = CsrRules(
            allowed_curves=settings.allowed_curves,
            min_rsa_bits=settings.min_rsa_bits,
            max_rsa_bits=settings.max_rsa_bits,
            rsa_public_exponent=settings.rsa_public_exponent,
            oui_allowlist=settings.oui_allowlist,
        )

    # -- issuance ---------------------------------------------------------------------------
    def issue(
        self,
        csr: bytes | str,
        principal: Principal,
        profile: str | None = None,
        *,
        replaces: str | None = None,
        expected_mac: MacAddress | None = None,
        also: tuple[Write, ...] = (),
    ) -> IssuedCertificate:
        """Issue a device certificate for ``csr`` (PEM or DER) under ``profile``.

        ``replaces`` names the certificate this one renews (RFC 9773 section 5), see
        :meth:`sign_and_commit`. ``expected_mac`` (an ACME order's identifier) refuses a CSR
        any of whose CN or SAN names is another device (RFC 8555 section 7.4). The writes in
        ``also`` join the issuing transaction.
        """
        require_role(principal, WRITERS, "Issuing")
        chosen = self.settings.profile(profile)
        try:
            facts = check_csr(csr, self.rules, expected_mac)
            check_scope(principal, facts.mac)
        except CAError as exc:
            ISSUANCE_REFUSED.labels(exc.kind.value).inc()
            log.info(
                "issuance refused",
                extra={"actor": principal.label, "kind": exc.kind.value, "detail": exc.detail},
            )
            raise
        return self.sign_and_commit(
            facts.public_key, facts.key_type, facts.mac, chosen, principal, replaces=replaces, also=also
        )

    def sign_and_commit(
        self,
        public_key: PublicKey,
        key_type: str,
        mac: MacAddress,
        profile: Profile,
        principal: Principal,
        *,
        replaces: str | None = None,
        also: tuple[Write, ...] = (),
    ) -> IssuedCertificate:
        """The issuance cycle for a public key that policy has accepted (design decision 6):
        sign with a fresh serial, commit the row, its audit entry and the writes in ``also`` in
        one transaction, then return. ``replaces`` must be a
        certificate of the same MAC in the principal's scope that has no successor yet; the
        lineage is written in the same transaction. A CAError inside rolls everything back.
        Issuance rate limits are checked before signing and counted in the transaction."""
        self.limits.check(principal, mac)
        for _ in range(SERIAL_ATTEMPTS):
            issuer_id, issuer = self.signers.active()
            serial = random_serial()
            with self.signers.signing(issuer):
                cert = issuer.sign_device_certificate(public_key, mac, profile, serial)
            der = cert.public_bytes(serialization.Encoding.DER)
            values: dict[str, Any] = {
                "serial": serial_text(serial),
                "issuer_id": issuer_id,
                "mac": mac.value,
                "profile": profile.name,
                "key_type": key_type,
                "not_before": cert.not_valid_before_utc,
                "not_after": cert.not_valid_after_utc,
                "status": CertificateStatus.VALID.value,
                "fingerprint_sha256": hashlib.sha256(der).hexdigest(),
                "der": der,
                "replaces": replaces,
                "created_by": principal.label,
                "created_at": self.clock.now(),
            }
            serial_hex = values["serial"]
            try:
                with self.db.write() as session:
                    if not issuers_store.still_signs(session, issuer_id):  # revoked since the snapshot
                        self.directory.invalidate()
                        raise CAError(Kind.UNAVAILABLE, REVOKED_ISSUER.format(name=issuer.name))
                    self.limits.take(session, principal, mac)
                    if replaces:
                        self._replace(session, replaces, serial_hex, mac, principal)
                    certs.ensure_device(session, mac.value)
                    certs.insert_certificate(session, **values)
                    for write in also:
                        write(session, serial_hex)
                    audit.record(
                        session,
                        actor=principal.label,
                        action="certificate.issue",
                        mac=mac.value,
                        serial=serial_hex,
                        detail={
                            "profile": profile.name,
                            "issuer": issuer.name,
                            "key_type": key_type,
                            **({"replaces": replaces} if replaces else {}),
                        },
                    )
            except SerialTaken:
                log.warning("serial collision, signing again", extra={"serial": serial_hex})
                continue
            CERTIFICATES_ISSUED.labels(profile.name, issuer.name).inc()
            log.info(
                "certificate issued",
                extra={
                    "actor": principal.label,
                    "mac": mac.value,
                    "serial": serial_hex,
                    "issuer": issuer.name,
                },
            )
            return self.view(CertificateRecord(**values), pem(cert))
        raise CAError(Kind.INTERNAL, "Could not allocate a unique serial number.")

    @staticmethod
    def _replace(session: Session, old: str, new: str, mac: MacAddress, principal: Principal) -> None:
        """Link ``new`` as the successor of ``old`` (same device, in scope, not replaced yet)."""
        row = certs.by_serial(session, old)
        if row is None or not in_scope(principal, MacAddress(row.mac)):
            raise CAError(Kind.NOT_FOUND, f"No certificate with serial {old} to replace.")
        if row.mac != mac.value:
            raise CAError(
                Kind.FORBIDDEN,
                f"Certificate {old} belongs to device {row.mac}; a renewal must be for the same MAC.",
            )
        if not certs.mark_replaced(session, old, new):
            raise CAError(Kind.CONFLICT, f"Certificate {old} has already been replaced.")

    # -- queries ----------------------------------------------------------------------------
    def view(self, row: CertificateRecord, certificate_pem: str | None = None) -> IssuedCertificate:
        """A stored (or just committed) certificate row as the API shows it; ``certificate_pem``
        saves re-encoding the DER when the caller has it."""
        cas = self.directory.get()
        if certificate_pem is None:
            certificate_pem = pem(x509.load_der_x509_certificate(row.der))
        return IssuedCertificate(
            serial=row.serial,
            mac=row.mac,
            profile=row.profile,
            issuer=cas.name_of(row.issuer_id),
            not_before=row.not_before,
            not_after=row.not_after,
            certificate_pem=certificate_pem,
            chain_pem=cas.chain_pem(row.issuer_id),
            status=CertificateStatus(row.status),
            fingerprint_sha256=row.fingerprint_sha256,
            key_type=row.key_type,
            revoked_at=row.revoked_at,
            revocation_reason=row.revocation_reason,
            replaces=row.replaces,
            replaced_by=row.replaced_by,
            created_by=row.created_by,
            created_at=row.created_at,
        )

    def certificate(self, serial: str, principal: Principal) -> IssuedCertificate:
        with self.db.read() as session:
            row = certs.by_serial(session, serial)
            if row is None or not in_scope(principal, MacAddress(row.mac)):
                raise CAError(Kind.NOT_FOUND, f"No certificate with serial {serial}.")
            return self.view(row)

    def search(
        self,
        principal: Principal,
        *,
        mac: str | None = None,
        status: str | None = None,
        expires_before: datetime | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[IssuedCertificate], int]:
        scopes = principal.mac_prefixes
        canonical = MacAddress.parse(mac).value if mac else None
        with self.db.read() as session:
            rows, total = certs.search(
                session,
                mac=canonical,
                status=status,
                expires_before=in_utc(expires_before, "'expires_before'") if expires_before else None,
                mac_prefixes=scopes,
                offset=offset,
                limit=limit,
            )
            return [self.view(r) for r in rows], total

    def device(
        self, mac_text: str, principal: Principal, *, offset: int = 0, limit: int = DEVICE_PAGE
    ) -> DeviceView:
        """A device in the principal's scope with a page of its certificates, newest first."""
        mac = device_mac(mac_text)
        if not in_scope(principal, mac):
            raise CAError(Kind.NOT_FOUND, f"No device {mac}.")
        with self.db.read() as session:
            row = certs.device(session, mac.value)
            if row is None:
                raise CAError(Kind.NOT_FOUND, f"No device {mac}.")
            found, total = certs.for_device(session, mac.value, offset=offset, limit=limit)
            return DeviceView(
                mac=row.mac,
                model=row.model,
                firmware=row.firmware,
                labels=dict(row.labels or {}),
                created_at=row.created_at,
                certificates=[self.view(r) for r in found],
                certificates_total=total,
            )
