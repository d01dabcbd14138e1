"""Renewal information (RFC 9773) and the lineage report, read from the certificate store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from ca_service.clock import SYSTEM, Clock
from ca_service.config import Settings
from ca_service.domain import IssuerState
from ca_service.errors import CAError, Kind
from ca_service.renewal.certid import parse_cert_id
from ca_service.renewal.windows import Window, WindowShape, suggested_window
from ca_service.store import Database, issuers
from ca_service.store import certificates as certs
from ca_service.store.certificates import CertificateRecord

RETIRING_STATES = (IssuerState.RETIRING, IssuerState.RETIRED)


@dataclass(frozen=True)
class RenewalInfo:
    serial: str
    mac: str
    window: Window
    retry_after: int  # seconds


@dataclass(frozen=True)
class DueCertificate:
    serial: str
    mac: str
    not_after: datetime
    profile: str


class Renewals:
    """Suggested renewal windows and the report of certificates due for renewal."""

    def __init__(self, db: Database, settings: Settings, clock: Clock = SYSTEM) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.shape = WindowShape.from_settings(settings)

    def _info(self, row: CertificateRecord, now: datetime, retiring: bool) -> RenewalInfo:
        window = suggested_window(
            row.not_before,
            row.not_after,
            row.serial,
            now,
            revoked=row.status == "revoked",
            issuer_retiring=retiring,
            shape=self.shape,
        )
        retry = self.settings.renewal_retry_after_seconds
        if window.urgent:
            retry = min(retry, 3600)
        return RenewalInfo(row.serial, row.mac, window, retry)

    def for_serial(self, serial: str, aki: bytes | None = None) -> RenewalInfo:
        """The renewal information of one certificate; with ``aki`` (from a certID) the
        certificate's authority key identifier must match too."""
        with self.db.read() as session:
            row = certs.by_serial(session, serial)
            if row is not None and aki is not None:
                ext = x509.load_der_x509_certificate(row.der).extensions
                found = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
                row = row if found == aki else None
            if row is None:
                raise CAError(Kind.NOT_FOUND, f"No certificate with serial {serial} from this CA.")
            issuer = issuers.by_id(session, row.issuer_id)
            retiring = issuer is not None and issuer.state in RETIRING_STATES
            return self._info(row, self.clock.now(), retiring)

    def for_cert_id(self, cert_id: str) -> RenewalInfo:
        aki, serial = parse_cert_id(cert_id)
        return self.for_serial(serial, aki)

    def due(
        self,
        days: int,
        mac_prefixes: tuple[str, ...] | None = None,
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[DueCertificate], int]:
        """Valid certificates that expire within ``days`` and have no successor, soonest first:
        a window of ``limit`` from ``offset`` (all without a limit), and how many there are."""
        if not 0 <= days <= 3650:
            raise CAError(Kind.MALFORMED, "days must be between 0 and 3650.")
        now = self.clock.now()
        with self.db.read() as session:
            rows, total = certs.due(
                session, now + timedelta(days=days), now, mac_prefixes, offset=offset, limit=limit
            )
            return [DueCertificate(r.serial, r.mac, r.not_after, r.profile) for r in rows], total
