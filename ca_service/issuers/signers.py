"""Signing keys of our CAs, loaded from the key store on demand and only to sign.

A :class:`Signers` hands out :class:`~ca_service.authority.issuer.Issuer` objects (a CA
certificate from the :class:`~ca_service.issuers.directory.Directory` paired with its key). A
key that cannot be loaded makes signing answer UNAVAILABLE with one fixed sentence; the reason,
which may name a key file, a PKCS#11 module or a token, goes to the log only, one line each time
the state of a key changes.

After a failure the key store is not asked again at once: the next attempt waits 1 s, then 2 s,
4 s ... up to ``MAX_BACKOFF``, whatever the callers do. Credentials the key store refused (a
token's PIN, a file key's passphrase) are never offered again by this worker until the CA record
changes: a rotation, or ``ca-service issuer check`` after the operator fixed them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ca_service.authority.issuer import Issuer
from ca_service.clock import SYSTEM, Clock
from ca_service.config import Settings
from ca_service.domain import IssuerRecord
from ca_service.errors import CAError, Kind
from ca_service.issuers.directory import CA, Directory
from ca_service.keystore import CredentialsRefused, forget_refusals, load_key

log = logging.getLogger("ca_service.issuers")

CANNOT_SIGN = "The CA key cannot sign now; the service log says why. Retry shortly."
MAX_BACKOFF = 60.0


@dataclass
class _Failure:
    record: IssuerRecord  # the record it failed with: a changed record is tried at once
    reason: str
    attempts: int
    retry_at: float  # monotonic; inf: refused credentials, wait for a changed record


class Signers:
    """Per worker: keys by CA id, loaded at first use and kept while the CA's record (and so
    its key URI) is unchanged."""

    def __init__(self, directory: Directory, settings: Settings, clock: Clock = SYSTEM) -> None:
        self.directory = directory
        self.settings = settings
        self._clock = clock.monotonic
        self._loaded: dict[int, tuple[IssuerRecord, Issuer]] = {}
        self._failed: dict[int, _Failure] = {}
        self._lock = threading.Lock()
        self._checked: tuple[float, CAError | None] | None = None  # (when, outcome) of self_test

    def issuer(self, ca: CA) -> Issuer:
        """``ca`` ready to sign. Raises UNAVAILABLE (fixed detail) when its key cannot be used."""
        cached = self._loaded.get(ca.id)
        if cached is not None and cached[0] == ca.record:
            return cached[1]
        with self._lock:
            cached = self._loaded.get(ca.id)
            if cached is not None and cached[0] == ca.record:
                return cached[1]
            failed = self._failed.get(ca.id)
            if failed is not None and failed.record == ca.record and self._clock() < failed.retry_at:
                raise CAError(Kind.UNAVAILABLE, CANNOT_SIGN)
            if failed is not None and failed.record != ca.record:
                forget_refusals()  # the operator changed the CA (or ran 'issuer check'): try again
            try:
                key = load_key(ca.record.key_uri, self.settings)
            except Exception as exc:  # any key store fault: a missing file, a token, a module
                self._fail(ca, exc, failed)
                raise CAError(Kind.UNAVAILABLE, CANNOT_SIGN) from exc
            if failed is not None:
                del self._failed[ca.id]
                log.warning("CA key available again", extra={"issuer": ca.name, "after": failed.attempts})
            signer = Issuer(ca.name, ca.certificate, key, self.settings.public_url)
            self._loaded[ca.id] = (ca.record, signer)
            return signer

    def _fail(self, ca: CA, exc: Exception, previous: _Failure | None) -> None:
        reason = exc.detail if isinstance(exc, CAError) else f"{type(exc).__name__}: {exc}"
        attempts = previous.attempts + 1 if previous is not None and previous.record == ca.record else 1
        wait = (
            float("inf") if isinstance(exc, CredentialsRefused) else min(MAX_BACKOFF, 2.0 ** (attempts - 1))
        )
        self._failed[ca.id] = _Failure(ca.record, reason, attempts, self._clock() + wait)
        if previous is None or previous.reason != reason:  # one line per change of state
            log.warning(
                "CA key unavailable",
                extra={
                    "issuer": ca.name,
                    "detail": reason,
                    "next_try_seconds": None if wait == float("inf") else wait,
                },
            )

    @contextmanager
    def signing(self, issuer: Issuer) -> Iterator[None]:
        """Sign inside this block: a key store failure while signing (a lost session, a token
        gone) becomes the fixed UNAVAILABLE sentence, its reason goes to the log, the key is
        dropped and the back-off starts (every signing path uses this one guard)."""
        try:
            yield
        except CAError as exc:
            if exc.kind is not Kind.UNAVAILABLE or exc.detail == CANNOT_SIGN:
                raise
            ca = next((c for c in self.directory.get().cas.values() if c.name == issuer.name), None)
            if ca is not None:
                with self._lock:
                    self._loaded.pop(ca.id, None)
                    self._fail(ca, exc, self._failed.get(ca.id))
            raise CAError(Kind.UNAVAILABLE, CANNOT_SIGN) from exc

    def active(self) -> tuple[int, Issuer]:
        """The issuing CA that signs new certificates, with its key."""
        ca = self.directory.get().require_active()
        return ca.id, self.issuer(ca)

    def for_id(self, issuer_id: int) -> Issuer:
        snapshot = self.directory.get()
        ca = snapshot.cas.get(issuer_id)
        if ca is None:
            raise CAError(Kind.NOT_FOUND, f"No CA with id {issuer_id}.")
        return self.issuer(ca)

    def self_test(self, max_age: float = 0.0) -> None:
        """Sign and verify a fixed message with the active issuing key (readiness). The outcome
        of a test younger than ``max_age`` seconds is reused (a public /healthz costs no
        signature each time; a background check keeps it fresh). A failure drops the cached
        key, so the next use loads it afresh (within the back-off)."""
        checked = self._checked  # only a success is reused: failures go through the back-off
        if checked is not None and self._clock() - checked[0] < max_age:
            return
        outcome: CAError | None = None
        try:
            issuer_id, signer = self.active()
            try:
                signer.self_test()
            except Exception as exc:
                with self._lock:
                    self._loaded.pop(issuer_id, None)
                self._fail(self.directory.get().cas[issuer_id], exc, self._failed.get(issuer_id))
                raise CAError(Kind.UNAVAILABLE, CANNOT_SIGN) from exc
        except CAError as exc:
            outcome = exc
        if outcome is not None:
            self._checked = None
            raise outcome
        self._checked = (self._clock(), None)
