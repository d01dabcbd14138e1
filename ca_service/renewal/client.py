"""``ca-service renew``: a cron-friendly ACME renewal client built on certbot's ``acme`` library.

For each managed certificate of the config file it asks the server's renewal information
(RFC 9773), renews only what is due, missing or expired, names the old certificate in
``replaces``, writes key and certificate atomically (temporary file + rename, keys 0600) and
runs the hook. One process at a time: an exclusive ``flock`` on the lock file.

Config (TOML)::

    lock_file = "/var/lib/ca-renew/lock"          # optional; default <config>.lock
    [[certificate]]
    name = "base-1"
    mac = "7C2F80C6E5C2"
    directory = "https://ca.example/acme/directory"
    cert = "/etc/dect/base-1.pem"                 # leaf + chain
    key = "/etc/dect/base-1.key"
    account_key = "/etc/ca-renew/account.key"     # made (0600) on first use
    eab_kid = "eab-..."                           # needed until the account exists
    eab_hmac_key = "..."
    rekey = true                                  # a new key per renewal (default)
    profile = "device"                            # optional
    hook = "systemctl reload provisioning"        # optional; run without a shell
    ca_bundle = "/etc/ca-renew/chain.pem"         # optional: TLS trust for an https directory
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shlex
import subprocess
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca_service.domain import MacAddress
from ca_service.errors import CAError, Kind
from ca_service.files import write_private
from ca_service.renewal.certid import cert_id_of

UTC = datetime.UTC
KEYS = {"name", "mac", "directory", "cert", "key", "account_key", "eab_kid", "eab_hmac_key", "rekey",
        "profile", "hook", "ca_bundle"}  # fmt: skip


@dataclass(frozen=True)
class Managed:
    name: str
    mac: str
    directory: str
    cert: Path
    key: Path
    account_key: Path
    eab_kid: str | None = None
    eab_hmac_key: str | None = field(default=None, repr=False)
    rekey: bool = True
    profile: str | None = None
    hook: str | None = None
    ca_bundle: str | None = None


@dataclass(frozen=True)
class Outcome:
    name: str
    state: str  # renewed | issued | not-due | would-renew | failed
    detail: str


def load_config(path: Path) -> tuple[list[Managed], Path]:
    """The managed certificates and the lock file of a config file; refuses unknown keys."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CAError(Kind.MALFORMED, f"Cannot read renewal config {path}: {exc}") from exc
    entries = data.get("certificate", [])
    if not isinstance(entries, list) or not entries:
        raise CAError(Kind.MALFORMED, f"{path} lists no [[certificate]] entries.")
    managed = []
    for i, entry in enumerate(entries):
        unknown = set(entry) - KEYS
        missing = {"name", "mac", "directory", "cert", "key", "account_key"} - set(entry)
        if unknown or missing:
            raise CAError(
                Kind.MALFORMED,
                f"[[certificate]] #{i + 1} in {path}: unknown keys {sorted(unknown)}, "
                f"missing {sorted(missing)}.",
            )
        values = dict(entry)
        values["mac"] = MacAddress.parse(values["mac"]).value
        for key in ("cert", "key", "account_key"):
            values[key] = Path(values[key])
        managed.append(Managed(**values))
    lock = Path(data.get("lock_file") or f"{path}.lock")
    return managed, lock


@contextmanager
def run_lock(path: Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive lock on ``path``; yields False (without waiting) when another run
    holds it and ``wait`` is off."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_public(path: Path, data: bytes) -> None:
    """Atomic write (temporary file in the same folder + rename), mode 0644."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_or_make_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CAError(Kind.BAD_KEY, f"{path} is not an ECDSA key.")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(path, _private_pem(key))
    return key


class Renewer:
    """Renews managed certificates through ACME; ``now`` is injectable for tests."""

    def __init__(self, dry_run: bool = False) -> None:
        self.dry_run = dry_run

    def _client(self, m: Managed) -> Any:
        import josepy as jose
        from acme import client

        account_key = _load_or_make_key(m.account_key)
        net = client.ClientNetwork(
            jose.JWKEC(key=account_key), alg=jose.ES256, user_agent="ca-service-renew",
            verify_ssl=m.ca_bundle or True,  # type: ignore[arg-type]
        )  # fmt: skip
        return client.ClientV2(client.ClientV2.get_directory(m.directory, net), net)

    def due(self, m: Managed, acme: Any, now: datetime.datetime) -> tuple[bool, str, x509.Certificate | None]:
        """(renew now?, why, current certificate)."""
        if not m.cert.exists():
            return True, "no certificate yet", None
        pem = m.cert.read_bytes()
        current = x509.load_pem_x509_certificate(pem)
        if current.not_valid_after_utc <= now:
            return True, "expired", current
        when, _ = acme.renewal_time(pem)
        if when is None:
            return False, "the server gives no renewal information", current
        when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        if when <= now:
            return True, "inside its renewal window", current
        return False, f"not due before {when:%Y-%m-%dT%H:%M:%SZ}", current

    def process(self, m: Managed, now: datetime.datetime | None = None) -> Outcome:
        now = now or datetime.datetime.now(UTC)
        try:
            acme = self._client(m)
            due, why, current = self.due(m, acme, now)
            if not due:
                return Outcome(m.name, "not-due", why)
            if self.dry_run:
                return Outcome(m.name, "would-renew", why)
            serial = self._renew(m, acme, current)
            self._hook(m)
            return Outcome(m.name, "renewed" if current else "issued", f"{why}; new serial {serial}")
        except Exception as exc:  # one line per failure, the run goes on
            return Outcome(m.name, "failed", _one_line(exc))

    def _account(self, m: Managed, acme: Any) -> None:
        from acme import errors, messages

        eab = None
        if m.eab_kid and m.eab_hmac_key:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=acme.net.key.public_key(),
                kid=m.eab_kid,
                hmac_key=m.eab_hmac_key,
                directory=acme.directory,
            )
        registration = messages.NewRegistration.from_data(
            terms_of_service_agreed=True, external_account_binding=eab
        )
        try:
            acme.new_account(registration)
        except errors.ConflictError as exc:  # the key has an account already: use it
            acme.net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())

    def _renew(self, m: Managed, acme: Any, current: x509.Certificate | None) -> str:
        from acme import messages

        self._account(m, acme)
        key = (
            ec.generate_private_key(ec.SECP256R1())
            if m.rekey or not m.key.exists()
            else _load_or_make_key(m.key)
        )
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, m.mac)]))
            .sign(key, hashes.SHA256())
        )
        order: dict[str, Any] = {"identifiers": [{"type": "permanent-identifier", "value": m.mac}]}
        if m.profile:
            order["profile"] = m.profile
        if current is not None:
            order["replaces"] = cert_id_of(current)
        response = acme._post(acme.directory["newOrder"], _Json(order))
        body = response.json()
        order_url = response.headers["Location"]
        response = acme._post(body["finalize"], messages.CertificateRequest(csr=csr))
        body = response.json()
        deadline = time.monotonic() + 90
        while body["status"] != "valid":
            if body["status"] == "invalid" or time.monotonic() > deadline:
                raise CAError(Kind.UNAVAILABLE, f"The order ended {body['status']}.")
            time.sleep(min(float(response.headers.get("Retry-After", 1)), 10))
            response = acme._post_as_get(order_url)
            body = response.json()
        chain = acme._post_as_get(body["certificate"]).content
        leaf = x509.load_pem_x509_certificate(chain)
        if m.rekey or not m.key.exists():
            write_private(m.key, _private_pem(key))
        _write_public(m.cert, chain)
        return format(leaf.serial_number, "X")

    @staticmethod
    def _hook(m: Managed) -> None:
        if not m.hook:
            return
        result = subprocess.run(shlex.split(m.hook), capture_output=True, timeout=300)
        if result.returncode != 0:
            raise CAError(Kind.INTERNAL, f"the hook exited with status {result.returncode}")


class _Json:
    """A ready-made JSON body for the acme library's signed POST (newOrder with 'replaces' and
    'profile', which its NewOrder does not carry in every version)."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def json_dumps(self, **kwargs: Any) -> str:
        return json.dumps(self.value, **kwargs)


def _one_line(exc: Exception) -> str:
    """A failure as one line a cron mail reader understands: the CA's refusal (its ACME
    problem's detail and type), a server that cannot be reached (which URL, why), a file that
    cannot be written; never a library's repr."""
    import requests
    from acme import errors, messages

    if isinstance(exc, CAError):
        text = exc.detail
    elif isinstance(exc, messages.Error):
        text = f"the CA refused: {exc.detail or exc.title or exc.typ} ({(exc.typ or '').rsplit(':', 1)[-1]})"
    elif isinstance(exc, errors.ClientError) and (answer := _response_of(exc)) is not None:
        text = _refusal(answer)
    elif isinstance(exc, errors.ConflictError):
        text = f"the CA answered 409 Conflict ({exc.location})"
    elif isinstance(exc, requests.exceptions.SSLError):
        why = _reason(exc)
        fix = "; set ca_bundle to the CA's chain" if "certificate verify failed" in why else ""
        text = f"TLS to {_url_of(exc)} failed ({why}){fix}"
    elif isinstance(exc, requests.exceptions.Timeout):
        text = f"{_url_of(exc)} did not answer in time"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        text = f"cannot connect to {_url_of(exc)}: {_reason(exc)}"
    elif isinstance(exc, OSError) and exc.filename:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = f"{type(exc).__name__}: {str(exc) or 'no detail'}"
    return " ".join(text.split())[:300]


def _response_of(exc: Exception) -> Any:
    """The HTTP response inside an acme ClientError (a response, or (response, error))."""
    first = exc.args[0] if exc.args else None
    first = first[0] if isinstance(first, tuple) and first else first
    return first if hasattr(first, "status_code") else None


def _refusal(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        kind = str(body.get("type", "")).rsplit(":", 1)[-1]
        return f"the CA refused: {body['detail']} ({kind or response.status_code})"
    return f"the CA answered HTTP {response.status_code} at {response.url}"


def _url_of(exc: Any) -> str:
    request = getattr(exc, "request", None)
    return str(getattr(request, "url", None) or "the ACME server")


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, e.g. 'connection refused'."""
    seen: BaseException | None = exc
    reason = ""
    while seen is not None:
        inner = [a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)]
        strerror = getattr(seen, "strerror", None) or getattr(getattr(seen, "reason", None), "strerror", None)
        if strerror:
            reason = str(strerror)
        seen = inner[0] if inner else (seen.__cause__ or seen.__context__)
    return (reason or "connection failed").lower()
