"""The one source of "now" (design decision 9): UTC, timezone-aware, and a monotonic reading
for intervals. Services are handed a :class:`Clock`; tests hand them a :class:`MovableClock` and
move it instead of sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """The system clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class MovableClock(Clock):
    """The system clock moved forward by :meth:`advance` (tests)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return super().monotonic() + self.offset


SYSTEM = Clock()
