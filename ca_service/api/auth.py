"""Bearer-token authentication for the REST API."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from ca_service.domain import Principal, Role
from ca_service.enrollment.tokens import authenticate
from ca_service.errors import CAError, Kind

F = TypeVar("F", bound=Callable[..., Any])
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def services() -> Any:
    return current_app.extensions["ca_service"]


def principal() -> Principal:
    return cast(Principal, g.principal)


def require(*roles: Role) -> Callable[[F], F]:
    """Authenticate the bearer token and require one of ``roles``; the principal lands in
    ``flask.g.principal``. 401 without a valid token, 403 with the wrong role."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else None
            who = authenticate(services().db, presented)
            if who.role not in roles:
                allowed = ", ".join(r.value for r in roles)
                raise CAError(
                    Kind.FORBIDDEN,
                    f"This action needs a token with role {allowed}; yours is {who.role.value}.",
                )
            g.principal = who
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


ANY_ROLE = (Role.ADMIN, Role.PROVISIONER, Role.AUDITOR)
WRITERS = (Role.ADMIN, Role.PROVISIONER)
