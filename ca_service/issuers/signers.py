"""Signing keys of our CAs, loaded from the key store on demand and only to sign.

A :class:`Signers` hands out :class:`~ca_service.authority.issuer.Issuer` objects (a CA
certificate from the :class:`~ca_service.issuers.directory.Directory` paired with its key). A
key that cannot be loaded makes signing answer UNAVAILABLE with one fixed sentence; the reason,
which may name a key file, a PKCS#11 module or a token, goes to the log only.
"""

from __future__ import annotations

import logging
import threading

from ca_service.authority.issuer import Issuer
from ca_service.config import Settings
from ca_service.errors import CAError, Kind
from ca_service.issuers.directory import CA, Directory
from ca_service.keystore import load_key

log = logging.getLogger("ca_service.issuers")

CANNOT_SIGN = "The CA key cannot sign now; the service log says why. Retry shortly."


class Signers:
    """Per worker: keys by CA id, loaded at first use and kept while the CA's record (and so
    its key URI) is unchanged."""

    def __init__(self, directory: Directory, settings: Settings) -> None:
        self.directory = directory
        self.settings = settings
        self._loaded: dict[int, tuple[object, Issuer]] = {}
        self._lock = threading.Lock()

    def issuer(self, ca: CA) -> Issuer:
        """``ca`` ready to sign. Raises UNAVAILABLE (fixed detail) when its key cannot be used."""
        cached = self._loaded.get(ca.id)
        if cached is not None and cached[0] == ca.record:
            return cached[1]
        with self._lock:
            cached = self._loaded.get(ca.id)
            if cached is not None and cached[0] == ca.record:
                return cached[1]
            try:
                key = load_key(ca.record.key_uri, self.settings)
            except Exception as exc:  # any key store fault: a missing file, a token, a module
                self._log_failure(ca, exc)
                raise CAError(Kind.UNAVAILABLE, CANNOT_SIGN) from exc
            signer = Issuer(ca.name, ca.certificate, key, self.settings.public_url)
            self._loaded[ca.id] = (ca.record, signer)
            return signer

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

    def self_test(self) -> None:
        """Sign and verify a fixed message with the active issuing key (readiness). A failure
        drops the cached key, so the next use loads it afresh."""
        issuer_id, signer = self.active()
        try:
            signer.self_test()
        except Exception as exc:
            with self._lock:
                self._loaded.pop(issuer_id, None)
            self._log_failure(self.directory.get().cas[issuer_id], exc)
            raise CAError(Kind.UNAVAILABLE, CANNOT_SIGN) from exc

    @staticmethod
    def _log_failure(ca: CA, exc: Exception) -> None:
        reason = exc.detail if isinstance(exc, CAError) else f"{type(exc).__name__}: {exc}"
        log.warning("CA key unavailable", extra={"issuer": ca.name, "detail": reason})
