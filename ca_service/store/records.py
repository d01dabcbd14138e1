"""Frozen values out of rows: what the store hands to services instead of live rows.

Reads of the hot paths (every ACME request, every issuance) use :class:`Lookup`: a Core SELECT
of a record's fields, built once at import, so SQLAlchemy reuses its compiled form and loads no
ORM objects; a row becomes the record by position."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.orm import Session

T = TypeVar("T")


def record(cls: type[T], row: Any) -> T:
    """The frozen dataclass ``cls`` of an ORM row, its fields read from the row by name."""
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})  # type: ignore[arg-type]


class Lookup(Generic[T]):
    """The ``cls`` record of the row of ``model`` whose column ``by`` equals a value."""

    def __init__(self, cls: type[T], model: Any, by: str) -> None:
        table = cast(Table, model.__table__)
        self.cls = cls
        self.by = by
        self.statement: Select[Any] = select(*(table.c[f.name] for f in fields(cls))).where(  # type: ignore[arg-type]
            table.c[by] == bindparam(by)
        )

    def __call__(self, session: Session, value: object) -> T | None:
        row = session.execute(self.statement, {self.by: value}).first()
        return self.cls(*row) if row else None
