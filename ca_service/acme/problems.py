"""ACME problem documents (RFC 8555 section 6.7, RFC 9773 ``alreadyReplaced``).

Every :class:`~ca_service.errors.Kind` has its ACME error type and HTTP status in :data:`RENDER`
(a test walks every kind through it); the registration authority raises kinds, never ACME names.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, g, json, request
from werkzeug.exceptions import HTTPException

from ca_service.errors import CAError, Kind

log = logging.getLogger("ca_service.acme")

PREFIX = "urn:ietf:params:acme:error:"

RENDER: dict[Kind, tuple[str, int]] = {
    Kind.MALFORMED: ("malformed", 400),
    Kind.BAD_CSR: ("badCSR", 400),
    Kind.BAD_SIGNATURE_ALGORITHM: ("badCSR", 400),  # of the CSR; a JWS algorithm is BAD_JWS_ALGORITHM
    Kind.BAD_KEY: ("badCSR", 400),
    Kind.BAD_IDENTIFIER: ("rejectedIdentifier", 400),
    Kind.REJECTED_IDENTIFIER: ("rejectedIdentifier", 400),
    Kind.UNSUPPORTED_IDENTIFIER: ("unsupportedIdentifier", 400),
    Kind.BAD_CERTIFICATE: ("malformed", 400),
    Kind.BAD_REVOCATION_REASON: ("badRevocationReason", 400),
    Kind.INVALID_PROFILE: ("invalidProfile", 400),  # draft-ietf-acme-profiles
    Kind.BAD_JWS_ALGORITHM: ("badSignatureAlgorithm", 400),
    Kind.BAD_PUBLIC_KEY: ("badPublicKey", 400),
    Kind.BAD_NONCE: ("badNonce", 400),
    Kind.INVALID_CONTACT: ("invalidContact", 400),
    Kind.EXTERNAL_ACCOUNT_REQUIRED: ("externalAccountRequired", 400),
    Kind.ACCOUNT_MISSING: ("accountDoesNotExist", 400),
    Kind.UNAUTHORIZED: ("unauthorized", 403),
    Kind.FORBIDDEN: ("unauthorized", 403),
    Kind.NOT_FOUND: ("malformed", 404),
    Kind.METHOD_NOT_ALLOWED: ("malformed", 405),
    Kind.NOT_IMPLEMENTED: ("malformed", 501),
    Kind.UNSUPPORTED_MEDIA_TYPE: ("malformed", 415),
    Kind.TOO_LARGE: ("malformed", 413),
    Kind.CONFLICT: ("malformed", 409),
    Kind.KEY_REUSED: ("malformed", 400),
    Kind.ALREADY_REVOKED: ("alreadyRevoked", 400),
    Kind.ALREADY_REPLACED: ("alreadyReplaced", 409),
    Kind.ORDER_NOT_READY: ("orderNotReady", 403),
    Kind.RATE_LIMITED: ("rateLimited", 429),
    Kind.GONE: ("malformed", 404),
    Kind.UNAVAILABLE: ("serverInternal", 503),
    Kind.INTERNAL: ("serverInternal", 500),
}


def from_caerror(exc: CAError) -> Response:
    acme_type, status = RENDER[exc.kind]
    body: dict[str, Any] = {"type": PREFIX + acme_type, "detail": exc.detail, "status": status}
    body.update(exc.extra)
    if exc.subproblems:
        body["subproblems"] = [
            {"type": PREFIX + RENDER[p.kind][0], "detail": p.detail, "identifier": p.identifier}
            for p in exc.subproblems
        ]
    if g.get("request_id"):
        body["request_id"] = g.request_id
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 503:
        response.headers["Retry-After"] = "5"
    if "retry_after" in exc.extra:  # rateLimited (RFC 8555 section 6.6)
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
    return response


# Flask's own HTTP errors under /acme/ (routing, body limits) by status
HTTP_KINDS = {
    404: Kind.NOT_FOUND,
    405: Kind.METHOD_NOT_ALLOWED,
    413: Kind.TOO_LARGE,
    415: Kind.UNSUPPORTED_MEDIA_TYPE,
}


def render(exc: Exception) -> Response:
    """The ACME problem for any exception raised while serving an ACME request: a CAError by its
    kind, Flask's HTTP errors as ``malformed`` with their status, anything else
    ``serverInternal`` naming only the request id. Refusals are logged with their type."""
    if isinstance(exc, HTTPException):
        kind = HTTP_KINDS.get(exc.code or 500, Kind.MALFORMED if (exc.code or 500) < 500 else Kind.INTERNAL)
        detail = {
            Kind.NOT_FOUND: "There is no such ACME resource; start from the directory.",
            Kind.METHOD_NOT_ALLOWED: "ACME resources take POST (the directory and new-nonce also GET).",
            Kind.TOO_LARGE: f"The request body is larger than {request.max_content_length} bytes.",
            Kind.UNSUPPORTED_MEDIA_TYPE: "Send ACME requests as application/jose+json.",
        }.get(kind, "The request cannot be read.")
        exc = CAError(kind, detail)
    elif isinstance(exc, RecursionError):
        exc = CAError(Kind.MALFORMED, "The request body is nested too deeply to read.")
    elif not isinstance(exc, CAError):
        log.exception("unexpected error", extra={"request_id": g.get("request_id")})
        exc = CAError(
            Kind.INTERNAL,
            f"The service failed unexpectedly; quote request id {g.get('request_id')} to the operator.",
        )
    log.info(
        "ACME request refused",
        extra={"type": RENDER[exc.kind][0], "detail": exc.detail, "account": g.get("acme_account")},
    )
    return from_caerror(exc)
