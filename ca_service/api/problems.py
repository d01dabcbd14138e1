"""RFC 9457 problem details for every 4xx/5xx the REST side answers.

A :class:`CAError` becomes a problem whose ``type`` names its kind; Flask's own HTTP errors
(404, 405, 413, 415 ...) and webargs' 422 become problems too. An unexpected exception is a 500
problem that shows only the request id, never a traceback.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g, json, request
from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ca_service.errors import CAError, Kind
from ca_service.logs import REQUEST_ID
from ca_service.metrics import HTTP_METHODS, HTTP_REQUESTS, method_label

log = logging.getLogger("ca_service.api")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:ca-service:problem:"
F = TypeVar("F", bound=Callable[..., Any])

# Every kind's HTTP status and title (a test walks every Kind through this table).
RENDER: dict[Kind, tuple[int, str]] = {
    Kind.MALFORMED: (400, "Malformed request"),
    Kind.BAD_CSR: (400, "Unreadable or invalid CSR"),
    Kind.BAD_SIGNATURE_ALGORITHM: (422, "Signature algorithm refused"),
    Kind.BAD_KEY: (422, "Key type or size refused"),
    Kind.BAD_IDENTIFIER: (422, "Not a usable device identifier"),
    Kind.REJECTED_IDENTIFIER: (403, "Identifier not allowed for this requester"),
    Kind.UNSUPPORTED_IDENTIFIER: (400, "Identifier type not supported"),
    Kind.BAD_CERTIFICATE: (422, "Certificate refused"),
    Kind.BAD_REVOCATION_REASON: (400, "Revocation reason refused"),
    Kind.INVALID_PROFILE: (404, "Unknown profile"),
    Kind.BAD_JWS_ALGORITHM: (400, "Signature algorithm refused"),
    Kind.BAD_PUBLIC_KEY: (400, "Public key refused"),
    Kind.BAD_NONCE: (400, "Bad nonce"),
    Kind.INVALID_CONTACT: (400, "Invalid contact"),
    Kind.EXTERNAL_ACCOUNT_REQUIRED: (400, "External account binding required"),
    Kind.ACCOUNT_MISSING: (400, "No such account"),
    Kind.UNAUTHORIZED: (401, "Authentication required"),
    Kind.FORBIDDEN: (403, "Not allowed"),
    Kind.NOT_FOUND: (404, "Not found"),
    Kind.METHOD_NOT_ALLOWED: (405, "Method not allowed"),
    Kind.NOT_IMPLEMENTED: (501, "Method not implemented"),
    Kind.UNSUPPORTED_MEDIA_TYPE: (415, "Unsupported media type"),
    Kind.TOO_LARGE: (413, "Request body too large"),
    Kind.CONFLICT: (409, "Conflict with current state"),
    Kind.KEY_REUSED: (422, "Idempotency-Key reused for another request"),
    Kind.ALREADY_REVOKED: (409, "Already revoked"),
    Kind.ALREADY_REPLACED: (409, "Already replaced"),
    Kind.ORDER_NOT_READY: (409, "Order not ready"),
    Kind.RATE_LIMITED: (429, "Too many requests"),
    Kind.GONE: (410, "No longer available"),
    Kind.UNAVAILABLE: (503, "Service unavailable"),
    Kind.INTERNAL: (500, "Internal error"),
}


# an incoming X-Request-Id that is kept: what proxies make (nginx's $request_id, UUIDs, ...)
WELL_FORMED_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")


def request_id() -> str:
    """This request's id: the client's or proxy's ``X-Request-Id`` when it is well-formed (8 to
    64 letters, digits, '.', '_', ':', '-'), else a fresh random one. Every log line of the
    request carries it (:data:`ca_service.logs.REQUEST_ID`)."""
    rid = getattr(g, "request_id", None)
    if rid is None:
        incoming = request.headers.get("X-Request-Id", "")
        rid = incoming if WELL_FORMED_REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
        g.request_id = rid
        REQUEST_ID.set(rid)
    return rid


def accepts(*mimetypes: str, limit_setting: str | None = None) -> Callable[[F], F]:
    """Let a view function or MethodView class take request bodies of ``mimetypes`` instead of
    JSON (place it directly under the route decorator); ``limit_setting`` names the setting that
    caps its bodies instead of ``max_body_bytes``."""

    def mark(view: F) -> F:
        view.body_types = mimetypes  # type: ignore[attr-defined]
        view.body_limit_setting = limit_setting  # type: ignore[attr-defined]
        return view

    return mark


def _declared(view: object, name: str) -> Any:
    """An attribute :func:`accepts` left on a view function or its MethodView class."""
    return getattr(view, name, None) or getattr(getattr(view, "view_class", None), name, None)


MAX_PAGE = 1_000_000


def page_window(pagination: Any) -> tuple[int, int]:
    """(offset, limit) of flask-smorest pagination parameters; a page beyond MAX_PAGE is a 422
    (a huge page number would overflow the database's integer)."""
    if pagination.page > MAX_PAGE:
        raise CAError(Kind.MALFORMED, f"'page' is at most {MAX_PAGE}.")
    return pagination.first_item, pagination.page_size


def problem_docs(blp: Blueprint, *pairs: tuple[int, str]) -> Callable[[F], F]:
    """Document the problem answers of a view in the OpenAPI document: (status, description)."""
    from ca_service.api.schemas import ProblemSchema

    def decorate(view: F) -> F:
        for status, description in pairs:
            view = blp.alt_response(
                status, schema=ProblemSchema, description=description, content_type=PROBLEM_JSON
            )(view)
        return view

    return decorate


def problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra: Any) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    body["instance"] = request.path
    body["request_id"] = request_id()
    body.update({k: v for k, v in extra.items() if k not in body})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ca-service"'
    if status == 503:
        response.headers["Retry-After"] = "5"
    return response


def from_caerror(exc: CAError) -> Response:
    status, title = RENDER[exc.kind]
    extra = dict(exc.extra)
    if exc.subproblems:
        extra["subproblems"] = [
            {"type": TYPE_PREFIX + p.kind.value, "detail": p.detail, "identifier": p.identifier}
            for p in exc.subproblems
        ]
    response = problem(status, title, exc.detail, TYPE_PREFIX + exc.kind.value, **extra)
    if "retry_after" in exc.extra:  # RFC 9110 section 10.2.3, with 429 (RFC 6585) and 503
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
    return response


_HTTP_DETAILS = {
    404: "There is no such resource; see /docs for the API.",
    405: "This method is not allowed on this resource.",
    413: "The request body is too large.",
    415: "Send the request body as application/json.",
}


def render(exc: Exception) -> Response:
    """The problem+json answer for any exception raised while serving a REST request: a
    CAError by its kind, Flask's own HTTP errors (404, 405, 413, 415, webargs' 422) by their
    status, anything else a 500 that names only the request id."""
    if isinstance(exc, CAError):
        if exc.kind in (Kind.INTERNAL, Kind.UNAVAILABLE):
            log.error(
                "request failed",
                extra={"kind": exc.kind.value, "detail": exc.detail, "request_id": request_id()},
            )
        return from_caerror(exc)
    if isinstance(exc, HTTPException):
        return _http(exc)
    if isinstance(exc, RecursionError):
        # any parser (JSON bodies, JWS) given absurdly nested input: a client error, not a 500
        return problem(400, "Bad Request", "The request body is nested too deeply to read.")
    log.exception("unexpected error", extra={"request_id": request_id()})
    return problem(
        500,
        "Internal error",
        f"The service failed unexpectedly; quote request id {request_id()} to the operator.",
    )


def _http(exc: HTTPException) -> Response:
    status = exc.code or 500
    detail = _HTTP_DETAILS.get(status, exc.description or "")
    extra: dict[str, Any] = {}
    if status == 400 and request.is_json:
        detail = "The request body is not valid JSON."
    if status == 413:
        limit = request.max_content_length  # per request: device imports have their own cap
        detail = f"The request body is larger than the limit of {limit} bytes."
        extra["limit_bytes"] = limit
    if status == 422:
        messages = getattr(exc, "data", {}).get("messages") if hasattr(exc, "data") else None
        detail = "The request does not match the schema; see 'errors' for each field."
        extra["errors"] = messages or {}
    allowed = sorted(getattr(exc, "valid_methods", None) or ())
    if status == 405 and allowed:
        extra["allowed_methods"] = allowed
    response = problem(status, exc.name, detail, **extra)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def install(app: Flask) -> None:
    """Register the request hooks on ``app``, in this order: timing and request id; unknown
    methods refused (501, before routing or any database work); authentication of views that
    need a bearer token (401/403 before their body or query is validated); body caps (413, also
    for chunked bodies); REST body types (415); and the request histogram with bounded labels
    after each request."""
    from ca_service.api.auth import authenticate_first

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        request_id()  # every request has its id from the start (ACME problems carry it too)

    @app.before_request
    def _known_method() -> None:
        if request.method not in HTTP_METHODS:
            raise CAError(
                Kind.NOT_IMPLEMENTED,
                f"This service answers only the methods {', '.join(sorted(HTTP_METHODS))}.",
            )

    app.before_request(authenticate_first)

    @app.before_request
    def _body_cap() -> None:
        """The body cap of this view; a streamed body (chunked, no Content-Length) is read here,
        and one that goes on past the cap is a 413, never silently cut at it (werkzeug stops
        reading there without a word)."""
        view = app.view_functions.get(request.endpoint or "")
        setting = _declared(view, "body_limit_setting")
        if setting:
            request.max_content_length = getattr(app.extensions["ca_service"].settings, setting)
        cap = request.max_content_length
        if (
            request.content_length is None
            and cap is not None
            and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        ):
            if len(request.get_data(cache=True)) >= cap and request.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()

    @app.before_request
    def _body_type() -> Response | None:
        """REST bodies are JSON, unless a view declares its own types with :func:`accepts`."""
        view = app.view_functions.get(request.endpoint or "")
        allowed: tuple[str, ...] = _declared(view, "body_types") or ("application/json",)
        if (
            request.path.startswith("/api/")
            and request.method in ("POST", "PUT", "PATCH")
            and (request.content_length or request.headers.get("Transfer-Encoding"))
            and request.mimetype not in allowed
            and not ("application/json" in allowed and request.is_json)
        ):
            return problem(
                415,
                "Unsupported Media Type",
                f"Send the request body as {' or '.join(allowed)} (got '{request.mimetype or 'none'}').",
            )
        return None

    @app.teardown_request
    def _forget_request_id(_exc: BaseException | None) -> None:
        REQUEST_ID.set(None)  # the worker's next lines (publisher, self-test) are no request's

    @app.after_request
    def _tag(response: Response) -> Response:
        response.headers["X-Request-Id"] = request_id()
        started = getattr(g, "started", None)
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            HTTP_REQUESTS.labels(method_label(request.method), endpoint, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response
