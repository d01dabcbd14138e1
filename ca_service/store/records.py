"""Frozen values out of ORM rows: what the store hands to services instead of live rows."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def record(cls: type[T], row: Any) -> T:
    """The frozen dataclass ``cls`` of an ORM row, its fields read from the row by name."""
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})  # type: ignore[arg-type]
