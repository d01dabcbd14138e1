"""The per-worker CRL publisher: a daemon thread that coalesces revocations into one regeneration.

Every gunicorn worker runs one (started from the ``post_worker_init`` hook, after the fork). It
wakes when this worker revoked something (after ``crl_coalesce_ms``, so a burst of revocations
costs one CRL) and every ``crl_check_seconds`` for the schedule and for revocations made by other
workers. Which worker actually regenerates is decided by the issuer's lease row in the database;
the others keep serving the stored bytes. When the lease is held elsewhere it retries each second
until the published CRL covers every revocation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from ca_service.errors import CAError
from ca_service.revocation.service import Revocation

log = logging.getLogger("ca_service.revocation")

RETRY_SECONDS = 1.0


class Publisher:
    def __init__(self, revocation: Revocation) -> None:
        self.revocation = revocation
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        revocation.on_revoke.append(self.poke)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._wake.set()  # publish at start if due
            self._thread = threading.Thread(target=self._run, name="crl-publisher", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """Ask the thread (if this worker runs one) to look for due CRLs now."""
        self._wake.set()

    def stop(self, wait: float = 5.0) -> None:
        """Stop the thread (waiting up to ``wait`` seconds for a build to finish) and release
        every lease this worker holds, so another worker publishes at once (a build still
        running is fenced: its CRL number is older than the next one)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=wait)
        self.revocation.release_leases()

    def _run(self) -> None:
        settings = self.revocation.settings
        failing: str | None = None
        next_check = time.monotonic() + settings.keystore_check_seconds
        while not self._stop.is_set():
            poked = self._wake.wait(settings.crl_check_seconds)
            if self._stop.is_set():
                return
            if poked:
                self._stop.wait(settings.crl_coalesce_ms / 1000)  # let a burst of revocations land
                self._wake.clear()
            if time.monotonic() >= next_check:  # the key store is watched, not only at start-up
                next_check = time.monotonic() + settings.keystore_check_seconds
                with contextlib.suppress(CAError):  # the signers log each change of state
                    self.revocation.signers.self_test()
            try:
                left = self.revocation.publish_due()
                failing = None
            except CAError as exc:  # the database or key store is away: one line per change
                if exc.detail != failing:
                    log.warning("CRL publication waits", extra={"detail": exc.detail})
                failing, left = exc.detail, True
            except Exception:  # keep the thread alive; /healthz and metrics show a stale CRL
                log.exception("CRL publication failed")
                left = True
            if left:
                self._stop.wait(RETRY_SECONDS)
                self._wake.set()
