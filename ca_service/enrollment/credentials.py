"""Keys made for devices and their one-time download URLs (the Gigaset ``certificate`` step).

A device that cannot send a CSR gets a key made here. The private key is kept only wrapped
(AES-256-GCM under the key store's wrapping key, bound to MAC and serial) and only until its one
download or until the download expires; then its row is deleted. Each delivery has two URLs with
256-bit tokens, looked up by their SHA-256 hashes and kept sealed under the wrapping key (so the
pending delivery can be shown again): the certificate URL may be fetched again until it
expires, the key URL exactly once. A download may be bound to the device: its User-Agent must
name the same MAC. Every download is audited, and so is every refusal that concerns a real
delivery; a token that does not exist is logged and counted, never written to the database.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.orm import Session

from ca_service.config import Settings
from ca_service.domain import (
    CertificateStatus,
    IssuedCertificate,
    KeyType,
    MacAddress,
    Principal,
    Profile,
)
from ca_service.enrollment.service import Enrollment, record_refusal
from ca_service.enrollment.tokens import token_hash
from ca_service.errors import CAError, Kind
from ca_service.keystore.wrapping import Wrapper, wrapping_key
from ca_service.metrics import DOWNLOAD_PROBES
from ca_service.policy import WRITERS, check_scope, device_mac, require_role
from ca_service.policy.csr import key_type_of
from ca_service.policy.user_agent import mac_in_user_agent
from ca_service.renewal.windows import WindowShape, suggested_window
from ca_service.store import audit
from ca_service.store import certificates as certs
from ca_service.store import credentials as store
from ca_service.store import devices as device_store
from ca_service.store.certificates import CertificateRecord, Write
from ca_service.store.models import DeviceCredentialRow, DownloadTokenRow

log = logging.getLogger("ca_service.enrollment")

TOKEN_BYTES = 32  # 256 bits
PEM_FORMATS = {
    "pkcs8": serialization.PrivateFormat.PKCS8,
    "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
}


@dataclass(frozen=True)
class Delivery:
    """A certificate and the two URLs a device fetches it and its key from."""

    certificate: IssuedCertificate
    certificate_url: str
    key_url: str
    expires_at: datetime
    bound_to_user_agent: bool


@dataclass(frozen=True)
class Step:
    """What preparing a provisioning step did: the delivery the device is to fetch (None when
    nothing is due) and whether a new key and certificate were made for it."""

    delivery: Delivery | None
    made: bool


@dataclass(frozen=True)
class Download:
    body: bytes
    filename: str


@dataclass(frozen=True)
class _Latest:
    """A device's newest credential as the provisioning step sees it."""

    credential: DeviceCredentialRow | None
    certificate: CertificateRecord | None
    key_pending: bool  # its wrapped key waits for the download (not taken, not expired)
    tokens: tuple[DownloadTokenRow, DownloadTokenRow] | None  # its live URLs that can be shown

    @property
    def valid(self) -> bool:
        return self.certificate is not None and self.certificate.status == CertificateStatus.VALID.value

    @property
    def waiting(self) -> bool:
        """A valid certificate whose key the device has not fetched yet."""
        return self.credential is not None and self.valid and self.key_pending


def _context(mac: str, serial: str) -> bytes:
    """Associated data of a wrapped key: it opens only for its own device and certificate."""
    return f"ca-service device key|{mac}|{serial}".encode()


def _token_context(credential_id: int, kind: str, digest: str) -> bytes:
    """Associated data of a sealed download token: it opens only in its own row."""
    return f"ca-service download token|{credential_id}|{kind}|{digest}".encode()


class Credentials:
    """Makes keys for devices, hands out their one-time URLs and serves the downloads."""

    def __init__(self, enrollment: Enrollment, settings: Settings) -> None:
        self.enrollment = enrollment
        self.db = enrollment.db
        self.clock = enrollment.clock
        self.settings = settings
        self.window_shape = WindowShape.from_settings(settings)

    def wrapping_key(self) -> Wrapper:
        """The key store's wrapping key (a token's AES key, or the file key store's)."""
        return wrapping_key(self.settings)

    # -- making credentials -----------------------------------------------------------------
    def _authorize(self, mac_text: str, principal: Principal, action: str) -> MacAddress:
        require_role(principal, WRITERS, "Making device credentials")
        mac = device_mac(mac_text, self.settings.oui_allowlist)
        try:
            check_scope(principal, mac)
        except CAError:
            record_refusal(self.db, principal.label, action, mac.value, None, "out of scope")
            raise
        return mac

    def create(
        self,
        mac_text: str,
        principal: Principal,
        *,
        profile: str | None = None,
        key_type: str = KeyType.EC_P256.value,
        bind_user_agent: bool | None = None,
        also: tuple[Write, ...] = (),
    ) -> Delivery:
        """Make a key and a certificate for the device and return the one-time URLs; the
        writes in ``also`` join the issuing transaction."""
        mac = self._authorize(mac_text, principal, "credentials.create")
        return self._make(
            mac, principal, self.settings.profile(profile), key_type, bind_user_agent, also=also
        )

    def delivery_of(self, serial: str, principal: Principal) -> Delivery:
        """The delivery made with certificate ``serial`` as it was handed out (an idempotent
        retry's answer), while it waits for the device; GONE once its key was downloaded or its
        URLs expired (the device has it, or a new delivery is due)."""
        cert = self.enrollment.certificate(serial, principal)
        latest = self._latest(MacAddress(cert.mac))
        if latest.credential is None or latest.credential.serial != serial or not latest.tokens:
            raise CAError(
                Kind.GONE, "The delivery of this request was downloaded or has expired; prepare a new one."
            )
        return self._shown(latest)

    def _make(
        self,
        mac: MacAddress,
        principal: Principal,
        profile: Profile,
        key_type: str,
        bind_user_agent: bool | None,
        *,
        replaces: str | None = None,
        first: tuple[Write, ...] = (),
        also: tuple[Write, ...] = (),
    ) -> Delivery:
        key = KeyType.parse(key_type, Kind.BAD_KEY).generate()
        checked_type = key_type_of(key.public_key(), self.enrollment.rules)
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        wrapping = self.wrapping_key()
        now = self.clock.now()
        expires = now + timedelta(seconds=self.settings.download_ttl_seconds)
        bind = self.settings.download_bind_user_agent if bind_user_agent is None else bind_user_agent
        tokens = {"cert": secrets.token_urlsafe(TOKEN_BYTES), "key": secrets.token_urlsafe(TOKEN_BYTES)}

        def store_key(session: Session, serial: str) -> None:
            credential_id = store.add_credential(
                session,
                mac=mac.value,
                serial=serial,
                key_type=checked_type,
                bind_mac=bind,
                download_expires_at=expires,
                created_by=principal.label,
            )
            store.add_wrapped_key(
                session,
                credential_id=credential_id,
                kek=wrapping.label,
                blob=wrapping.wrap(der, _context(mac.value, serial)),
                expires_at=expires,
            )
            self._add_tokens(session, wrapping, credential_id, tokens, expires)
            store.purge(session, now)
            audit.record(
                session,
                actor=principal.label,
                action="credentials.create",
                mac=mac.value,
                serial=serial,
                detail={"key_type": checked_type, "expires_at": expires.isoformat(), "bound": bind},
            )

        cert = self.enrollment.sign_and_commit(
            key.public_key(),
            checked_type,
            mac,
            profile,
            principal,
            replaces=replaces,
            also=(*first, store_key, *also),
        )
        return self._delivery(cert, tokens, expires, bind)

    @staticmethod
    def _add_tokens(
        session: Session, wrapping: Wrapper, credential_id: int, tokens: dict[str, str], expires: datetime
    ) -> None:
        for kind, value in tokens.items():
            digest = token_hash(value)
            store.add_token(
                session,
                token_hash=digest,
                credential_id=credential_id,
                kind=kind,
                expires_at=expires,
                sealed=wrapping.wrap(value.encode(), _token_context(credential_id, kind, digest)),
            )

    def _delivery(
        self, cert: IssuedCertificate, tokens: dict[str, str], expires: datetime, bind: bool
    ) -> Delivery:
        base = self.settings.public_url.rstrip("/")
        return Delivery(
            certificate=cert,
            certificate_url=f"{base}/provisioning/cert/{tokens['cert']}",
            key_url=f"{base}/provisioning/key/{tokens['key']}",
            expires_at=expires,
            bound_to_user_agent=bind,
        )

    # -- the provisioning step --------------------------------------------------------------
    def _latest(self, mac: MacAddress) -> _Latest:
        now = self.clock.now()
        with self.db.read() as session:
            latest = store.latest_for_device(session, mac.value)
            if latest is None:
                return _Latest(None, None, False, None)
            return _Latest(
                latest,
                certs.by_serial(session, latest.serial),
                store.wrapped_key_pending(session, latest.id, now),
                store.pending_tokens(session, latest.id, now),
            )

    def _shown(self, latest: _Latest) -> Delivery:
        """The waiting delivery with the URLs it was handed out with (their tokens unsealed)."""
        assert latest.credential is not None and latest.certificate is not None and latest.tokens
        wrapping = self.wrapping_key()
        cred = latest.credential
        tokens = {
            t.kind: wrapping.unwrap(t.sealed or b"", _token_context(cred.id, t.kind, t.token_hash)).decode()
            for t in latest.tokens
        }
        expires = min(t.expires_at for t in latest.tokens)
        return self._delivery(self.enrollment.view(latest.certificate), tokens, expires, cred.bind_mac)

    def pending(self, mac_text: str, principal: Principal) -> Delivery | None:
        """The delivery waiting for the device, with the URLs it was handed out with, until its
        key is downloaded or its URLs expire; None when nothing waits. It only reads (a safe
        method, RFC 9110 section 9.2.1): a monitoring probe neither mints URLs nor expires the
        pending ones. :meth:`provision` prepares a step."""
        mac = self._authorize(mac_text, principal, "provisioning.step")
        latest = self._latest(mac)
        return self._shown(latest) if latest.waiting and latest.tokens else None

    def provision(
        self,
        mac_text: str,
        principal: Principal,
        *,
        profile: str | None = None,
        key_type: str | None = None,
        fresh_urls: bool = False,
    ) -> Step:
        """Prepare what the device's next ``certificate`` step delivers.

        No credential yet, the last one revoked, or its undelivered key expired: a new key and
        certificate. Its key still waiting: that delivery as it is (nothing written), or with
        fresh URLs when ``fresh_urls`` is set or its URLs cannot be shown again (the older
        unused URLs then expire). Its key delivered and the certificate in its renewal window:
        a new key and certificate that supersede it. Otherwise nothing is due. Concurrent calls
        for one device make one key (the device row is locked and the decision re-checked
        before commit)."""
        mac = self._authorize(mac_text, principal, "provisioning.step")
        for _ in range(3):
            now = self.clock.now()
            latest = self._latest(mac)
            cred, cert_row = latest.credential, latest.certificate
            if latest.waiting:
                assert cred is not None
                if latest.tokens and not fresh_urls:
                    return Step(self._shown(latest), made=False)
                return Step(self._fresh_urls(cred, principal, mac), made=False)
            if cred and cert_row and latest.valid and cred.key_delivered_at is not None:
                window = suggested_window(
                    cert_row.not_before, cert_row.not_after, cert_row.serial, now, shape=self.window_shape
                )
                if now < window.start:
                    return Step(None, made=False)
            expected = cred.id if cred else None

            def unchanged(session: Session, serial: str, expected: int | None = expected) -> None:
                device_store.locked(session, mac.value)
                current = store.latest_for_device(session, mac.value)
                if (current.id if current else None) != expected:
                    raise CAError(Kind.CONFLICT, "Another request prepared this device's credential first.")

            try:
                delivery = self._make(
                    mac,
                    principal,
                    self.settings.profile(profile or (cert_row.profile if cert_row else None)),
                    key_type or (cred.key_type if cred else KeyType.EC_P256.value),
                    None,
                    replaces=cred.serial if cred and latest.valid else None,
                    first=(unchanged,),
                )
                return Step(delivery, made=True)
            except CAError as exc:
                if exc.kind is not Kind.CONFLICT:
                    raise
        raise CAError(Kind.UNAVAILABLE, "The device's credential is being changed concurrently; try again.")

    def _fresh_urls(self, credential: DeviceCredentialRow, principal: Principal, mac: MacAddress) -> Delivery:
        tokens = {"cert": secrets.token_urlsafe(TOKEN_BYTES), "key": secrets.token_urlsafe(TOKEN_BYTES)}
        bind = credential.bind_mac
        now = self.clock.now()
        wrapping = self.wrapping_key()
        with self.db.write() as session:
            device_store.locked(session, mac.value)
            store.expire_unused_tokens(session, credential.id, now)
            self._add_tokens(session, wrapping, credential.id, tokens, credential.download_expires_at)
            audit.record(
                session,
                actor=principal.label,
                action="credentials.urls",
                mac=mac.value,
                serial=credential.serial,
                detail={"expires_at": credential.download_expires_at.isoformat(), "bound": bind},
            )
        cert = self.enrollment.certificate(credential.serial, principal)
        return self._delivery(cert, tokens, credential.download_expires_at, bind)

    # -- downloads (public: the token is the credential) ------------------------------------
    def download(self, kind: str, token: str, user_agent: str | None) -> Download:
        """Serve a certificate (``kind="cert"``) or key (``"key"``) download.

        Unknown token: NOT_FOUND, found by a read alone; it is logged and counted
        (``ca_download_unknown_token_total``), never written, so probes cost no row and no write
        lock. Expired, or a key already downloaded: GONE. Bound to the device and the
        User-Agent names another MAC (or none): FORBIDDEN. A download and each refusal about a
        real delivery is audited."""
        digest = token_hash(token)
        with self.db.read() as session:
            found = store.token(session, digest)
        if found is None or found[0].kind != kind or not hmac.compare_digest(found[0].token_hash, digest):
            DOWNLOAD_PROBES.labels(kind).inc()
            log.info("download refused: unknown token", extra={"kind": kind})
            raise CAError(Kind.NOT_FOUND, "There is no such download; check the URL.")
        tok, cred = found
        action = f"download.{kind}"
        try:
            with self.db.write() as session:
                now = self.clock.now()
                if tok.expires_at <= now:
                    raise CAError(Kind.GONE, "This download URL has expired; fetch a new provisioning step.")
                if kind == "key" and tok.used_at is not None:
                    raise CAError(
                        Kind.GONE, "This key was already downloaded; a key URL works once. Fetch a new step."
                    )
                if cred.bind_mac and getattr(mac_in_user_agent(user_agent), "value", None) != cred.mac:
                    raise CAError(
                        Kind.FORBIDDEN,
                        "This download is bound to its device; the User-Agent must name its MAC.",
                    )
                cert_row = certs.by_serial(session, cred.serial)
                if cert_row is None or cert_row.status != CertificateStatus.VALID.value:
                    raise CAError(Kind.GONE, "This certificate was revoked; fetch a new provisioning step.")
                profile = self._profile(cert_row.profile)
                if kind == "cert":
                    store.count_fetch(session, tok.id)
                    cert = self.enrollment.view(cert_row)
                    body = (cert.certificate_pem + (cert.chain_pem if profile.cert_chain else "")).encode()
                else:
                    blob = store.claim_key(session, tok.id, cred.id, now)
                    if blob is None:  # raised inside the transaction: a marked token rolls back
                        raise CAError(
                            Kind.GONE, "This key is no longer available; fetch a new provisioning step."
                        )
                    body = self._key_pem(blob, cred, profile)
                store.purge(session, now)
                audit.record(session, actor="device", action=action, mac=cred.mac, serial=cred.serial)
        except CAError as exc:
            if exc.kind in (Kind.GONE, Kind.FORBIDDEN):
                record_refusal(self.db, "device", action, cred.mac, cred.serial, exc.detail)
                self.purge()
            raise
        log.info("download served", extra={"kind": kind, "mac": cred.mac, "serial": cred.serial})
        return Download(body=body, filename=f"{cred.mac}_{kind}.pem")

    def _profile(self, name: str) -> Profile:
        """The certificate's profile; the default profile's formats if it was since removed."""
        known = {p.name: p for p in self.settings.profiles}
        return known.get(name) or replace(self.settings.profile(None), name=name)

    def _key_pem(self, blob: bytes, cred: DeviceCredentialRow, profile: Profile) -> bytes:
        der = self.wrapping_key().unwrap(blob, _context(cred.mac, cred.serial))
        key = serialization.load_der_private_key(der, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        return key.private_bytes(
            serialization.Encoding.PEM, PEM_FORMATS[profile.key_format], serialization.NoEncryption()
        )

    # -- housekeeping -----------------------------------------------------------------------
    def purge(self) -> int:
        """Delete every wrapped key whose download expired (also done on each access)."""
        with self.db.write() as session:
            count = store.purge(session, self.clock.now())
            if count:
                audit.record(session, actor="system", action="credentials.purge", detail={"keys": count})
        return count
