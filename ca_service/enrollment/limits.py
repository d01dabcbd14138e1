"""Issuance rate limits: how many certificates one API token, one ACME account and one device
MAC may be issued per window (settings ``rate_limit_*``; 0 turns a limit off, the default).

Limits hold across workers and hosts because they are counted in the database, in the issuing
transaction (:mod:`ca_service.store.limits`): the increment and the certificate commit
together, and a refused issuance rolls its increment back. Windows are fixed: a window of W
seconds starts at a multiple of W since the Unix epoch, so around a window's end up to twice
the limit can be issued within W seconds. A request over a limit is ``RATE_LIMITED`` (HTTP 429
with ``Retry-After``, ACME ``rateLimited``, RFC 8555 section 6.6) and signs nothing: the limits
are read before signing, and counted again when the certificate is committed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from ca_service.clock import SYSTEM, Clock
from ca_service.config import Settings
from ca_service.domain import MacAddress, Principal
from ca_service.errors import CAError, Kind
from ca_service.metrics import ISSUANCE_REFUSED
from ca_service.store import Database
from ca_service.store import limits as store

log = logging.getLogger("ca_service.enrollment")


@dataclass(frozen=True)
class Limit:
    """One limit that applies to an issuance: its counter, size, window and setting."""

    subject: str  # the counter: token:<id>, acme-account:<id>, mac:<MAC>
    allowed: int
    window: int  # seconds
    who: str  # for the refusal: "The API token 'ops'"
    setting: str


def _per(window: int) -> str:
    named = {60: "minute", 3600: "hour", 86400: "day", 7 * 86400: "week"}
    return named.get(window, f"{window} seconds")


class RateLimits:
    """The configured issuance limits of one service (see the module docstring)."""

    def __init__(self, db: Database, settings: Settings, clock: Clock = SYSTEM) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def applying(self, principal: Principal, mac: MacAddress) -> list[Limit]:
        """The limits that count an issuance by ``principal`` for ``mac`` (none when all are off)."""
        s = self.settings
        found = []
        if s.rate_limit_token and principal.token_id is not None:
            found.append(
                Limit(
                    f"token:{principal.token_id}",
                    s.rate_limit_token,
                    s.rate_limit_token_window_seconds,
                    f"The API token '{principal.name}'",
                    "rate_limit_token",
                )
            )
        if s.rate_limit_acme_account and principal.acme_account is not None:
            found.append(
                Limit(
                    f"acme-account:{principal.acme_account}",
                    s.rate_limit_acme_account,
                    s.rate_limit_acme_account_window_seconds,
                    f"ACME account {principal.acme_account}",
                    "rate_limit_acme_account",
                )
            )
        if s.rate_limit_mac:
            found.append(
                Limit(
                    f"mac:{mac.value}",
                    s.rate_limit_mac,
                    s.rate_limit_mac_window_seconds,
                    f"Device {mac}",
                    "rate_limit_mac",
                )
            )
        return found

    def _window(self, limit: Limit, now: datetime) -> tuple[datetime, datetime]:
        start = math.floor(now.timestamp() / limit.window) * limit.window
        begins = datetime.fromtimestamp(start, UTC)
        return begins, begins + timedelta(seconds=limit.window)

    def _refuse(self, limit: Limit, ends: datetime, now: datetime) -> CAError:
        retry = max(1, math.ceil((ends - now).total_seconds()))
        ISSUANCE_REFUSED.labels(Kind.RATE_LIMITED.value).inc()
        log.info("issuance rate-limited", extra={"subject": limit.subject, "retry_after": retry})
        return CAError(
            Kind.RATE_LIMITED,
            f"{limit.who} may be issued at most {limit.allowed} certificate(s) per {_per(limit.window)} "
            f"({limit.setting}); that many were issued in this window, try again in {retry} seconds.",
            retry_after=retry,
        )

    def check(self, principal: Principal, mac: MacAddress) -> None:
        """Refuse before signing when a limit is already reached (a read; none when no limit
        applies)."""
        limits = self.applying(principal, mac)
        if not limits:
            return
        now = self.clock.now()
        with self.db.read() as session:
            for limit in limits:
                begins, ends = self._window(limit, now)
                if store.count(session, limit.subject, begins) >= limit.allowed:
                    raise self._refuse(limit, ends, now)

    def take(self, session: Session, principal: Principal, mac: MacAddress) -> None:
        """Count this issuance in the issuing transaction, as its first write; over a limit,
        refuse (the caller's transaction rolls back, and the count with it). Counters of ended
        windows are deleted first: issuers touch only current windows, so the purges of
        concurrent transactions wait for each other and never for an issuer's counter."""
        limits = self.applying(principal, mac)
        if not limits:
            return
        now = self.clock.now()
        store.purge(session, now)
        for limit in limits:
            begins, ends = self._window(limit, now)
            if store.take(session, limit.subject, begins, ends) > limit.allowed:
                raise self._refuse(limit, ends, now)
