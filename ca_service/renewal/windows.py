"""Renewal windows: when a certificate is due for renewal (the idea of RFC 9773 section 4.2's
suggestedWindow, reduced to a share of the validity period)."""

from __future__ import annotations

from datetime import datetime


def in_renewal_window(not_before: datetime, not_after: datetime, now: datetime, share: float = 2 / 3) -> bool:
    """True once ``share`` of the validity period has passed (and after expiry). Pure; all
    datetimes timezone-aware UTC. ``share`` is clamped to [0, 1]."""
    share = min(max(share, 0.0), 1.0)
    return now >= not_before + (not_after - not_before) * share
