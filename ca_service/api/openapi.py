"""The OpenAPI document (served at /openapi.json, shown at /docs): one place that documents what
every REST operation answers.

A view declares what is its own: its ``operationId`` (``blp.doc``), the schemas and examples of
its body and answers, non-JSON media types (:data:`TEXT`, :data:`BINARY`, :func:`upload`), and
the problems only it raises (:func:`problem_docs`). :class:`Blueprint` adds to every operation
what follows from how the service answers (``problems.install``, ``auth.require``): the
bearer-token security and its 401, a 403 when the operation needs a role not every token has,
400/413/415 for request bodies, the 422 of schema validation, 400 for a page beyond the last
one, 503 when the database or key store is away; each as ``application/problem+json`` (RFC 9457)
with an example. The ``X-Pagination`` header is documented as what it is on the wire: JSON text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from copy import deepcopy
from typing import Any, TypeVar

import flask_smorest

from ca_service.api import examples
from ca_service.api.problems import PROBLEM_JSON, RENDER, TYPE_PREFIX
from ca_service.domain import Role
from ca_service.errors import Kind

F = TypeVar("F", bound=Callable[..., Any])
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}

# The problem each status stands for in the examples: its kind (type and title) and a detail the
# service really sends.
EXAMPLES: dict[int, tuple[Kind, str]] = {
    400: (Kind.MALFORMED, "The request body is not valid JSON."),
    401: (Kind.UNAUTHORIZED, "This endpoint needs 'Authorization: Bearer <token>'."),
    403: (Kind.FORBIDDEN, "This action needs a token with role admin; yours is auditor."),
    404: (Kind.NOT_FOUND, f"No certificate with serial {examples.SERIAL}."),
    405: (Kind.METHOD_NOT_ALLOWED, "This method is not allowed on this resource."),
    409: (Kind.ALREADY_REVOKED, f"Certificate {examples.SERIAL} is already revoked."),
    410: (Kind.GONE, "This download URL has expired; fetch a new provisioning step."),
    413: (Kind.TOO_LARGE, "The request body is larger than the limit of 65536 bytes."),
    415: (Kind.UNSUPPORTED_MEDIA_TYPE, "Send the request body as application/json (got 'text/plain')."),
    422: (Kind.BAD_KEY, "RSA keys shorter than 2048 bits are refused (this one has 1024)."),
    429: (
        Kind.RATE_LIMITED,
        "The API token 'factory-line-1' may be issued at most 100 certificate(s) per hour "
        "(rate_limit_token); that many were issued in this window, try again in 1200 seconds.",
    ),
    503: (Kind.UNAVAILABLE, "The database is not available; try again shortly."),
}
HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": 'Bearer realm="ca-service"', "schema": {"type": "string"}}},
    405: {"Allow": {"description": "The methods this resource answers.", "schema": {"type": "string"}}},
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}
PAGINATION_HEADER = {
    "description": "JSON text: total, total_pages, first_page, last_page, page, previous_page, "
    "next_page (the page members only where such a page exists).",
    "schema": {"type": "string"},
    "example": '{"total": 120, "total_pages": 3, "first_page": 1, "last_page": 3, "page": 1, "next_page": 2}',
}
# every path variable of the REST API, documented alike wherever it appears
PATH_PARAMETERS: dict[str, tuple[str, object]] = {
    "serial": (
        "Certificate serial in hex, as 'openssl x509 -serial' prints it (colons allowed).",
        examples.SERIAL,
    ),
    "mac": ("Device MAC in any common spelling.", "7c:2f:80:c6:e5:c2"),
    "kid": ("Key id of an external account binding key.", examples.EAB_KEY["kid"]),
    "account_id": ("ACME account id.", examples.ACCOUNT["id"]),
    "anchor_id": ("Trust anchor id.", examples.ANCHOR["id"]),
    "name": ("Name of one of our CAs.", examples.ISSUER["name"]),
    "token": (
        "The token of a delivery URL (it is the credential).",
        examples.DELIVERY["key_url"].rsplit("/", 1)[1],
    ),
    "encoded": ("A DER OCSPRequest in base64, URL-encoded.", None),
    "fmt": ("The encoding: DER (crt, crl) or PEM (pem).", None),
}
PATH_VARIABLE = re.compile(r"<(?:[^<>:]+:)?(\w+)>")
UNAVAILABLE = "The database or the key store is unavailable (bounded waits; it heals by itself)"


def problem_example(status: int) -> dict[str, Any]:
    """A problem document as ``problems.problem`` renders one for ``status``."""
    kind, detail = EXAMPLES[status]
    return {
        "type": TYPE_PREFIX + kind.value,
        "title": RENDER[kind][1],
        "status": status,
        "detail": detail,
        "instance": "/api/v1/certificates",
        "request_id": "5c1dc89bd82e262a",
    }


def problem_response(status: int, description: str) -> dict[str, Any]:
    """The OpenAPI response object of a problem answer."""
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF, "example": problem_example(status)}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


TEXT: dict[str, Any] = {"type": "string"}  # the schema of a text body that is not JSON: PEM, CSV, XML
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}  # DER: certificates, CRLs, OCSP


def upload(*media_types: str, example: str | None = None, description: str = "") -> dict[str, Any]:
    """The ``requestBody`` of an operation that takes raw bodies (for ``blp.doc``, beside a JSON
    body of ``blp.arguments`` or alone): text with ``example``, else binary."""
    entry: dict[str, Any] = {"schema": BINARY} if example is None else {"schema": TEXT, "example": example}
    body: dict[str, Any] = {"content": {media_type: entry for media_type in media_types}}
    if description:
        body["description"] = description
    return body


def _noted(view: F, key: str, *items: Any) -> F:
    """Add ``items`` to the list ``key`` of the view's flask-smorest doc store (copied first, as
    flask-smorest's decorators do); :class:`Blueprint` reads them."""
    doc = deepcopy(getattr(view, "_apidoc", {}))
    doc.setdefault(key, []).extend(items)
    view._apidoc = doc  # type: ignore[attr-defined]
    return view


def problem_docs(*pairs: tuple[int, str]) -> Callable[[F], F]:
    """Declare the problems (status, when) a view raises itself; :class:`Blueprint` documents
    them with those every operation of its kind can answer."""
    return lambda view: _noted(view, "problems", *pairs)


def header_doc(name: str, description: str, schema: dict[str, Any]) -> Callable[[F], F]:
    """Declare an optional request header the view reads."""
    parameter = {
        "in": "header",
        "name": name,
        "required": False,
        "description": description,
        "schema": schema,
    }
    return lambda view: _noted(view, "headers", parameter)


def _join(found: dict[int, list[str]], status: int, description: str) -> None:
    found.setdefault(status, [])
    if description not in found[status]:
        found[status].append(description)


def _described(reasons: list[str]) -> str:
    """One reason as a sentence, several as a Markdown list (Swagger UI renders it)."""
    if len(reasons) == 1:
        return reasons[0] + "."
    return "\n".join(f"- {reason}" for reason in reasons)


class Api(flask_smorest.Api):
    """flask-smorest's Api without its error answers and pagination header: their shapes (an
    ``Error`` object, a ``PaginationMetadata`` object) are not what this service sends, and a
    ``default`` answer would document every status at once. :class:`Blueprint` documents them."""

    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self) -> None:
        """No flask-smorest error responses (nor their Error schema) in the components."""

    def _register_pagination_header(self) -> None:
        """No PaginationMetadata header component: :data:`PAGINATION_HEADER` is inline."""


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose operations document every problem they can answer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_problems_doc)

    def add_url_rule(self, rule: str, *args: Any, parameters: list[Any] | None = None, **kwargs: Any) -> None:
        """Route as flask-smorest does, with the path variables documented from PATH_PARAMETERS."""
        documented = list(parameters or [])
        for name in PATH_VARIABLE.findall(rule):
            if name in PATH_PARAMETERS:
                description, example = PATH_PARAMETERS[name]
                param = {"in": "path", "name": name, "description": description}
                documented.append(param if example is None else {**param, "example": example})
        super().add_url_rule(rule, *args, parameters=documented, **kwargs)

    def _document_pagination_metadata(self, spec: Any, resp_doc: dict[str, Any]) -> None:
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = PAGINATION_HEADER

    @staticmethod
    def _prepare_problems_doc(doc: dict[str, Any], doc_info: dict[str, Any], **_: Any) -> dict[str, Any]:
        responses: dict[Any, Any] = doc.setdefault("responses", {})
        found: dict[int, list[str]] = {}
        roles: tuple[Role, ...] | None = doc_info.get("roles")
        if roles is not None:
            doc["security"] = SECURITY
            _join(found, 401, "No bearer token, or one that is unknown, expired or revoked")
            if set(roles) != set(Role):
                _join(found, 403, f"The token's role is not {' or '.join(r.value for r in roles)}")
        doc.setdefault("parameters", []).extend(doc_info.get("headers", ()))
        if not doc["parameters"]:
            del doc["parameters"]
        for status, description in doc_info.get("problems", ()):
            _join(found, status, description)
        body = doc.get("requestBody") or doc_info.get("manual_doc", {}).get("requestBody")
        if body:
            _join(found, 413, "The body is larger than this operation's limit")
            if "application/json" in body["content"]:
                _join(found, 400, "The body is not valid JSON")
                _join(found, 415, "The body is of a media type this operation does not take")
        if responses.pop(422, None) or responses.pop("422", None):
            _join(found, 422, "The request does not match the schema; 'errors' names each field")
        if "pagination" in doc_info:
            _join(found, 400, "'page' beyond 1000000")
        _join(found, 503, UNAVAILABLE)
        for status, reasons in sorted(found.items()):
            own = responses.get(status, {})  # the view's own answer of this status, another media type
            if own:
                reasons.insert(0, own["description"])
            answer = problem_response(status, _described(reasons))
            answer["content"] = {**own.get("content", {}), **answer["content"]}
            responses[status] = answer
        return doc
