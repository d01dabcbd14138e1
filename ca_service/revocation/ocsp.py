"""The OCSP responder (RFC 6960): good, revoked or unknown, straight from the database.

Every request looks its serial up in the certificates table (indexed, unique), never in a CRL.
Signed responses without a nonce are kept per worker, keyed by the certificate's status, and
reused until half their validity has passed; a status change makes a new key, so a revoked
certificate is never answered from a stale "good". A request with a nonce is signed afresh and
the nonce echoed (RFC 8954).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from ca_service.authority.ocsp import cert_id_keys, sign_response, unsuccessful
from ca_service.clock import SYSTEM, Clock
from ca_service.config import Settings
from ca_service.domain import serial_text
from ca_service.issuers import Directory, Signers, Snapshot
from ca_service.policy.reasons import reason_flag
from ca_service.store import Database
from ca_service.store import revocations as store
from ca_service.store.db import DatabaseUnavailable

CACHE_ENTRIES = 50_000
MAX_NONCE_OCTETS = 32  # RFC 8954 section 2.1: Nonce ::= OCTET STRING(SIZE(1..32))


@dataclass(frozen=True)
class OcspAnswer:
    der: bytes
    status: ocsp.OCSPResponseStatus
    cert_status: ocsp.OCSPCertStatus | None = None
    next_update: datetime | None = None
    this_update: datetime | None = None  # also producedAt: the HTTP Last-Modified (RFC 5019 6.2)

    @cached_property
    def etag(self) -> str:
        """The HTTP entity tag of this response: a hash of its bytes (RFC 5019 6.2)."""
        return hashlib.sha256(self.der).hexdigest()[:32]


class OcspResponder:
    def __init__(
        self, db: Database, directory: Directory, signers: Signers, settings: Settings, clock: Clock = SYSTEM
    ) -> None:
        self.db = db
        self.clock = clock
        self.directory = directory
        self.signers = signers
        self.lifetime = timedelta(seconds=settings.ocsp_lifetime_seconds)
        self.by_name = settings.ocsp_responder_id == "name"
        self.include_certificate = settings.ocsp_include_certificate
        self._cache: OrderedDict[tuple[object, ...], tuple[datetime, OcspAnswer]] = OrderedDict()
        self._lock = threading.Lock()
        self._index: dict[tuple[str, bytes, bytes], int] = {}
        self._index_of: Snapshot | None = None

    def _issuer_for(self, request: ocsp.OCSPRequest) -> int | None:
        cas = self.directory.get()
        if self._index_of is not cas:  # (re)built when the CA set is (re)loaded
            self._index = {
                key: issuer_id
                for issuer_id, ca in cas.signing.items()
                for key in cert_id_keys(ca.certificate)
            }
            self._index_of = cas
        key = (request.hash_algorithm.name, request.issuer_name_hash, request.issuer_key_hash)
        return self._index.get(key)

    def _while_database_is_away(self, issuer_id: int, request: ocsp.OCSPRequest) -> OcspAnswer:
        """Without the database: the newest still-valid response this worker signed for the same
        certificate (its status was true when signed, and a client may cache it that long), else
        ``tryLater`` (RFC 6960 section 2.3)."""
        now = self.clock.now()
        wanted = (issuer_id, request.hash_algorithm.name, request.serial_number)
        with self._lock:
            answers = [
                answer
                for key, (_, answer) in self._cache.items()
                if key[:3] == wanted and answer.next_update is not None and now < answer.next_update
            ]
        if answers:
            return answers[-1]
        status = ocsp.OCSPResponseStatus.TRY_LATER
        return OcspAnswer(unsuccessful(status), status)

    def respond(self, der: bytes) -> OcspAnswer:
        """Answer one DER OCSPRequest. Unreadable requests, requests for more than one
        certificate and nonces outside 1 to 32 octets (RFC 8954 section 2.1) get
        ``malformedRequest``; a CertID naming none of our issuers gets ``unauthorized``
        (RFC 6960 section 2.3)."""
        try:
            request = ocsp.load_der_ocsp_request(der)
            # decoded lazily: read every field now (multi-certificate requests, unknown hash
            # algorithms and duplicate extensions fail here, not later in a 500)
            request.serial_number  # noqa: B018
            request.hash_algorithm  # noqa: B018
            request.extensions  # noqa: B018
        except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm, x509.DuplicateExtension):
            status = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            return OcspAnswer(unsuccessful(status), status)
        nonces = [e.value for e in request.extensions if isinstance(e.value, x509.OCSPNonce)]
        if any(not 1 <= len(n.nonce) <= MAX_NONCE_OCTETS for n in nonces):
            status = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            return OcspAnswer(unsuccessful(status), status)
        issuer_id = self._issuer_for(request)
        if issuer_id is None:
            status = ocsp.OCSPResponseStatus.UNAUTHORIZED
            return OcspAnswer(unsuccessful(status), status)
        try:
            with self.db.read() as session:
                row = store.status_of(session, serial_text(request.serial_number))
        except DatabaseUnavailable:
            return self._while_database_is_away(issuer_id, request)
        if row is None or row.issuer_id != issuer_id:
            cert_status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
        elif row.status == "revoked":
            cert_status, revoked_at, reason = (
                ocsp.OCSPCertStatus.REVOKED,
                row.revoked_at,
                row.revocation_reason,
            )
        else:
            cert_status, revoked_at, reason = ocsp.OCSPCertStatus.GOOD, None, None
        has_nonce = bool(nonces)
        key = (
            issuer_id,
            request.hash_algorithm.name,
            request.serial_number,
            cert_status,
            revoked_at,
            reason,
        )
        now = self.clock.now()
        if not has_nonce:
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and now < hit[0]:
                return hit[1]
        this_update = now.replace(microsecond=0)
        signer = self.signers.for_id(issuer_id)
        with self.signers.signing(signer):
            der = sign_response(
                signer,
                request,
                cert_status,
                this_update,
                this_update + self.lifetime,
                revoked_at,
                reason_flag(reason) if cert_status is ocsp.OCSPCertStatus.REVOKED else None,
                by_name=self.by_name,
                include_certificate=self.include_certificate,
            )
        answer = OcspAnswer(
            der, ocsp.OCSPResponseStatus.SUCCESSFUL, cert_status, this_update + self.lifetime, this_update
        )
        if not has_nonce:
            with self._lock:
                self._cache[key] = (this_update + self.lifetime / 2, answer)
                self._cache.move_to_end(key)
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return answer
