"""The cron-friendly renewal client (``ca-service renew``), built on certbot's ``acme`` library.

For each managed certificate it asks the server's renewal information (RFC 9773 section 4.2),
renews only what is due or expired with an ACME order that names the certificate it
``replaces`` (RFC 9773 section 5), writes the files atomically (keys 0600), and runs a hook.
A lock file keeps two cron runs from overlapping.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import josepy as jose
from acme import client as acme_client
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ca_service.domain import KeyType, MacAddress
from ca_service.errors import CAError, Kind

log = logging.getLogger("ca_service.renewal")

USER_AGENT = "ca-service-renew"


@dataclass(frozen=True)
class Managed:
    """One certificate the client keeps renewed (a ``[[certificate]]`` table of the config)."""

    name: str
    mac: str
    cert: Path
    key: Path
    directory: str
    account_key: Path
    chain: Path | None = None
    eab_kid: str | None = None
    eab_hmac_key: str | None = field(default=None, repr=False)
    rekey: bool = True
    key_type: str = "ec-p256"
    profile: str | None = None
    hook: str | None = None
    ca_bundle: str | None = None  # CA file to verify the ACME server's TLS certificate


@dataclass(frozen=True)
class Outcome:
    name: str
    action: str  # renewed | issued | not-due | failed | would-renew
    detail: str


def load_config(path: Path) -> list[Managed]:
    """Read the TOML config: a ``[defaults]`` table and ``[[certificate]]`` tables."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CAError(Kind.MALFORMED, f"Cannot read renewal config {path}: {exc}") from exc
    defaults = data.get("defaults", {})
    allowed = set(Managed.__dataclass_fields__)
    out = []
    for i, table in enumerate(data.get("certificate", [])):
        merged: dict[str, Any] = {**defaults, **table}
        unknown = set(merged) - allowed - {"eab_hmac_key_file"}
        if unknown:
            raise CAError(Kind.MALFORMED, f"certificate #{i + 1}: unknown keys {sorted(unknown)}.")
        hmac_file = merged.pop("eab_hmac_key_file", None)
        if hmac_file:
            merged["eab_hmac_key"] = Path(hmac_file).read_text().strip()
        missing = {"mac", "cert", "key", "directory", "account_key"} - set(merged)
        if missing:
            raise CAError(Kind.MALFORMED, f"certificate #{i + 1}: missing {sorted(missing)}.")
        merged.setdefault("name", merged["mac"])
        merged["mac"] = MacAddress.parse(str(merged["mac"])).value
        for key in ("cert", "key", "account_key", "chain"):
            if merged.get(key):
                merged[key] = Path(merged[key])
        out.append(Managed(**merged))
    if not out:
        raise CAError(Kind.MALFORMED, f"{path} lists no [[certificate]].")
    return out


@contextmanager
def run_lock(path: Path, wait: bool) -> Iterator[bool]:
    """An exclusive flock on ``path``; yields False when another run holds it and ``wait`` is off."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Temporary file in the same folder + fsync + rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ReplacingOrder(messages.NewOrder):
    """newOrder with the RFC 9773 section 5 ``replaces`` field."""

    replaces: str | None = jose.field("replaces", omitempty=True)


def _private_key(kind: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    key_type = KeyType(kind)
    if key_type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(65537, int(kind.split("-")[1]))


def _load_or_make_key(path: Path, kind: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        return key
    return _private_key(kind)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 section 4.1: base64url(AKI keyIdentifier) "." base64url(serial DER INTEGER bytes)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = cert.serial_number
    raw = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    return f"{jose.b64encode(aki or b'').decode()}.{jose.b64encode(raw).decode()}"


class RenewalClient:
    """Talks to one ACME server per managed certificate (one account key per directory)."""

    def __init__(self, managed: Managed) -> None:
        self.m = managed
        account = _load_or_make_key(managed.account_key, "ec-p256")
        if not managed.account_key.exists():
            write_atomic(managed.account_key, _pem_key(account), 0o600)
        alg = jose.ES256 if isinstance(account, ec.EllipticCurvePrivateKey) else jose.RS256
        jwk = (
            jose.JWKEC(key=account)
            if isinstance(account, ec.EllipticCurvePrivateKey)
            else jose.JWKRSA(key=account)
        )
        verify: bool | str = managed.ca_bundle or True
        net = acme_client.ClientNetwork(jwk, alg=alg, user_agent=USER_AGENT, verify_ssl=verify)  # type: ignore[arg-type]
        directory = messages.Directory.from_json(net.get(managed.directory).json())
        self.acme = acme_client.ClientV2(directory, net)
        self.jwk = jwk

    def register(self) -> None:
        """Find or create the account (RFC 8555 section 7.3, EAB 7.3.4)."""
        eab = None
        if self.m.eab_kid and self.m.eab_hmac_key:
            eab = messages.ExternalAccountBinding.from_data(
                self.jwk.public_key(), self.m.eab_kid, self.m.eab_hmac_key, self.acme.directory
            )
        reg = messages.NewRegistration.from_data(terms_of_service_agreed=True, external_account_binding=eab)
        try:
            self.acme.new_account(reg)
        except acme_client.errors.ConflictError as exc:  # account exists: bind to it
            self.acme.net.account = messages.RegistrationResource(
                uri=exc.location, body=messages.Registration()
            )

    def due(self, now: datetime) -> tuple[bool, str]:
        """Is the certificate due? Missing or expired: yes. Otherwise ask renewal information."""
        if not self.m.cert.exists():
            return True, "no certificate yet"
        cert = x509.load_pem_x509_certificate(self.m.cert.read_bytes())
        if cert.not_valid_after_utc <= now:
            return True, f"expired {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
        when, _ = self.acme.renewal_time(self.m.cert.read_bytes())
        if when is None:
            return False, "server offers no renewal information"
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if when <= now:
            return True, f"inside the renewal window (chosen time {when:%Y-%m-%d %H:%M}Z)"
        return False, f"next renewal at {when:%Y-%m-%d %H:%M}Z"

    def renew(self) -> str:
        """Order, finalize and download; write key, certificate and chain; return the new serial."""
        old = x509.load_pem_x509_certificate(self.m.cert.read_bytes()) if self.m.cert.exists() else None
        key = (
            _private_key(self.m.key_type)
            if self.m.rekey or not self.m.key.exists()
            else _load_or_make_key(self.m.key, self.m.key_type)
        )
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.m.mac)]))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        order = ReplacingOrder(
            identifiers=[
                messages.Identifier(typ=messages.IdentifierType("permanent-identifier"), value=self.m.mac)
            ],
            profile=self.m.profile or None,
            replaces=cert_id(old) if old is not None else None,
        )
        response = self.acme._post(self.acme.directory["newOrder"], order)
        body = messages.Order.from_json(response.json())
        authzs = [
            self.acme._authzr_from_response(self.acme._post_as_get(u), uri=u) for u in body.authorizations
        ]
        resource = messages.OrderResource(
            body=body, uri=response.headers.get("Location"), authorizations=authzs, csr_pem=csr
        )
        finished = self.acme.poll_and_finalize(resource)
        fullchain = finished.fullchain_pem.encode()
        certs = x509.load_pem_x509_certificates(fullchain)
        leaf = certs[0]
        if leaf.public_key() != key.public_key():
            raise CAError(Kind.INTERNAL, "The server returned a certificate for another key.")
        write_atomic(self.m.key, _pem_key(key), 0o600)
        write_atomic(self.m.cert, leaf.public_bytes(serialization.Encoding.PEM), 0o644)
        if self.m.chain:
            write_atomic(
                self.m.chain, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[1:]), 0o644
            )
        return format(leaf.serial_number, "X")


def run_hook(command: str, managed: Managed) -> None:
    """Run the post-renewal hook with the certificate's paths in the environment (no shell)."""
    env = {
        **os.environ,
        "RENEWED_MAC": managed.mac,
        "RENEWED_CERT": str(managed.cert),
        "RENEWED_KEY": str(managed.key),
    }
    result = subprocess.run(shlex.split(command), env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise CAError(Kind.INTERNAL, f"hook exited {result.returncode}: {result.stderr.strip()[:200]}")


def process(managed: Managed, *, dry_run: bool, now: datetime | None = None) -> Outcome:
    """Check one certificate and renew it when due; any failure becomes a 'failed' outcome."""
    now = now or datetime.now(UTC)
    try:
        client = RenewalClient(managed)
        is_due, why = client.due(now)
        if not is_due:
            return Outcome(managed.name, "not-due", why)
        if dry_run:
            return Outcome(managed.name, "would-renew", why)
        client.register()
        existed = managed.cert.exists()
        serial = client.renew()
        if managed.hook:
            run_hook(managed.hook, managed)
        return Outcome(managed.name, "renewed" if existed else "issued", f"{why}; new serial {serial}")
    except CAError as exc:
        return Outcome(managed.name, "failed", exc.detail)
    except Exception as exc:  # one bad certificate must not stop the others
        log.warning("renewal failed", extra={"certificate": managed.name, "error": type(exc).__name__})
        return Outcome(managed.name, "failed", f"{type(exc).__name__}: {str(exc)[:200]}")
