"""Structured logs: one JSON object per line on stderr. Never pass key material to a logger.

Every line has ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``msg`` and
``pid``, then the record's extra fields; a line logged while a request is served carries that
request's ``request_id`` (:data:`REQUEST_ID`, set by the web layer). gunicorn's error and access
logs use the same formatter (gunicorn_conf.py), so the stream has one shape.

This module imports the standard library only: gunicorn_conf.py loads it by its file path in
the gunicorn master, which must import no module of the package (see its docstring).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

# the id of the request being served in this context (None outside requests)
REQUEST_ID: ContextVar[str | None] = ContextVar("ca_service_request_id", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            doc["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value
        if record.exc_info and record.levelno >= logging.ERROR:
            doc["exc"] = self.formatException(record.exc_info)  # for operators; never in responses
        return json.dumps(doc, default=str)


def configure(level: str = "INFO") -> None:
    """Send the ``ca_service`` loggers to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("ca_service")
    if any(getattr(h, "_ca_service", False) for h in logger.handlers):
        logger.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._ca_service = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
