"""Issuance rate counters (:class:`~ca_service.store.models.RateCounterRow`): one row per subject
and fixed window, shared by every worker and host through the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ca_service.store.models import RateCounterRow


def count(session: Session, subject: str, window_start: datetime) -> int:
    """How many issuances ``subject`` has in the window that starts at ``window_start``."""
    found = session.scalar(
        select(RateCounterRow.count).where(
            RateCounterRow.subject == subject, RateCounterRow.window_start == window_start
        )
    )
    return int(found or 0)


def take(session: Session, subject: str, window_start: datetime, expires_at: datetime) -> int:
    """Count one more issuance of ``subject`` in its window and return the new count. The
    increment is one statement (an upsert): concurrent transactions on the same row wait for
    each other's commit, so no two see the same count, on any worker or host."""
    dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(RateCounterRow)
        .values(subject=subject, window_start=window_start, count=1, expires_at=expires_at)
        .on_conflict_do_update(
            index_elements=[RateCounterRow.subject, RateCounterRow.window_start],
            set_={"count": RateCounterRow.count + 1},
        )
        .returning(RateCounterRow.count)
    )
    return int(session.execute(statement).scalar_one())


def purge(session: Session, now: datetime) -> None:
    """Delete the counters of windows that have ended."""
    session.execute(
        delete(RateCounterRow).where(RateCounterRow.expires_at <= now),
        execution_options={"synchronize_session": False},
    )
