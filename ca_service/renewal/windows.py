"""Suggested renewal windows (RFC 9773 section 4.2), shared by ACME and REST.

A pure function: no I/O. The window opens after ``start`` of the lifetime, shifted per
certificate by a deterministic hash of its serial over ``spread`` of the lifetime (so a fleet
issued in one afternoon does not renew in the same minute), and stays open ``length`` of the
lifetime. A revoked certificate, or one whose issuer is retiring, should be replaced now.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from ca_service.config import Settings

URGENT = timedelta(hours=1)


@dataclass(frozen=True)
class WindowShape:
    start: float = 0.667
    spread: float = 0.1
    length: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> WindowShape:
        return cls(
            settings.renewal_window_start, settings.renewal_window_spread, settings.renewal_window_length
        )


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    urgent: bool  # revoked or issuer retiring: renew now


def serial_fraction(serial: str) -> float:
    """A stable number in [0, 1) derived from the serial (SHA-256, first 8 octets)."""
    digest = hashlib.sha256(serial.upper().encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def suggested_window(
    not_before: datetime,
    not_after: datetime,
    serial: str,
    now: datetime,
    *,
    revoked: bool = False,
    issuer_retiring: bool = False,
    shape: WindowShape = WindowShape(),
) -> Window:
    """The window in which the certificate should be renewed; ``[now, now + 1h]`` when urgent."""
    if revoked or issuer_retiring:
        return Window(now, now + URGENT, urgent=True)
    lifetime = not_after - not_before
    start = not_before + lifetime * (shape.start + shape.spread * serial_fraction(serial))
    end = min(start + max(lifetime * shape.length, timedelta(minutes=1)), not_after)
    return Window(start, max(end, start), urgent=False)
