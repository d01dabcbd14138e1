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


def services() -> Any:
    return current_app.extensions["ca_service"]


def principal() -> Principal:
    return cast(Principal, g.principal)


def authorize(roles: tuple[Role, ...]) -> Principal:
    """The principal of this request's bearer token, which must have one of ``roles``; it is
    authenticated once per request and kept in ``flask.g.principal``. 401 without a valid
    token, 403 with the wrong role."""
    who: Principal | None = g.get("principal")
    if who is None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else None
        who = authenticate(services().db, presented)
        g.principal = who
    if who.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise CAError(
            Kind.FORBIDDEN,
            f"This action needs a token with role {allowed}; yours is {who.role.value}.",
        )
    return who


def require(*roles: Role) -> Callable[[F], F]:
    """Require a bearer token with one of ``roles`` for a view. The roles are also left on the
    view (flask-smorest's decorators copy them outwards), so that :func:`authenticate_first`
    refuses a request before its body or query is read, and in its documentation, where
    ``openapi.Blueprint`` turns them into the security requirement, 401 and 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authorize(roles)
            return view(*args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        wrapper._apidoc = {**getattr(view, "_apidoc", {}), "roles": roles}  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def required_roles(view: Callable[..., Any]) -> tuple[Role, ...] | None:
    """The roles :func:`require` set on the view that answers this request's method (a
    MethodView's method; HEAD falls back to GET as Flask does), or None for a public view."""
    target: object = view
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        name = request.method.lower()
        if name == "head" and not hasattr(view_class, "head"):
            name = "get"
        target = getattr(view_class, name, None)
    return getattr(target, "required_roles", None)


def authenticate_first() -> None:
    """Before-request hook: authenticate views that :func:`require` a token before anything
    else reads the request (schema validation answers 422 only to an authenticated caller)."""
    view = current_app.view_functions.get(request.endpoint or "")
    roles = required_roles(view) if view is not None else None
    if roles is not None:
        authorize(roles)


ANY_ROLE = (Role.ADMIN, Role.PROVISIONER, Role.AUDITOR)
WRITERS = (Role.ADMIN, Role.PROVISIONER)
