"""``Idempotency-Key`` on the REST writes that a client must be able to retry safely
(draft-ietf-httpapi-idempotency-key-header): issuing, revoking.

The key is recorded in the transaction of the write it guards, with what that write did. A
retry with the same key and the same request (method, path and body) gets the same answer,
whether the first attempt's answer was lost or not; the same key with another request is 422;
two requests with one key at once make one change (the second waits for the first and answers
what it did). Keys belong to the token that sent them and expire after
``idempotency_key_hours``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from ca_service.api.auth import principal, services
from ca_service.api.openapi import header_doc, problem_docs
from ca_service.errors import CAError, Kind
from ca_service.store import idempotency as keys
from ca_service.store.certificates import Write

HEADER = "Idempotency-Key"
F = TypeVar("F", bound=Callable[..., Any])


def writes() -> tuple[Write, ...]:
    """What the guarded view hands its service to join the write's transaction."""
    return tuple(g.get("idempotency_writes", ()))


def _key() -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # an sf-string, as the draft writes it
        value = value[1:-1]
    if not 1 <= len(value) <= 255 or not all(" " <= c <= "~" for c in value):
        raise CAError(Kind.MALFORMED, f"The {HEADER} header is 1 to 255 printable ASCII characters.")
    return value


def idempotent(replay: Callable[[str], Any]) -> Callable[[F], F]:
    """Guard a write view (place it under ``require``). ``replay(result)`` answers a retry from
    the recorded result (the serial(s)), as the view answered the first time. The header and
    its problems are documented on the view."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            key = _key()
            if key is None:
                return view(*args, **kwargs)
            who = principal().label
            digest = hashlib.sha256(
                b"\n".join([request.method.encode(), request.path.encode(), request.get_data()])
            ).hexdigest()
            found = _find(who, key)
            if found is None:
                now = services().clock.now()
                expires = now + timedelta(hours=services().settings.idempotency_key_hours)
                g.idempotency_writes = (keys.remember(who, key, digest, now, expires),)
                try:
                    return view(*args, **kwargs)
                except keys.KeyInUse:  # a concurrent request with this key committed first
                    found = _find(who, key)
                    if found is None:
                        raise
            if found.request_hash != digest:
                raise CAError(
                    Kind.KEY_REUSED,
                    f"This {HEADER} was used for another request (method, path or body differ); "
                    "use a new key for a new request.",
                )
            return replay(found.result)

        documented = header_doc(
            HEADER,
            "Any 1 to 255 printable characters, new for each new request: a retry with the same key "
            "and body answers what the first attempt did (for idempotency_key_hours, default 24).",
            {"type": "string", "minLength": 1, "maxLength": 255, "example": "issue-7C2F80C6E5C2-1"},
        )(guarded)
        return problem_docs(  # type: ignore[return-value]
            (400, f"The {HEADER} header is malformed"),
            (422, f"The {HEADER} was used for another request"),
        )(documented)

    return decorate


def _find(who: str, key: str) -> keys.KeyRecord | None:
    svc = services()
    with svc.db.read() as session:
        return keys.find(session, who, key, svc.clock.now())
