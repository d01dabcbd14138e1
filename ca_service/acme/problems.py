"""ACME problem documents (RFC 8555 section 6.7, RFC 9773 alreadyReplaced).

A CAError becomes ``urn:ietf:params:acme:error:<type>``: the type comes from ``extra["acme"]``
when the ACME layer named it, else from the error's kind.
"""

from __future__ import annotations

from typing import Any

from flask import Response, json

from ca_service.errors import CAError, Kind

PREFIX = "urn:ietf:params:acme:error:"
STATUS = {
    "malformed": 400,
    "badNonce": 400,
    "badSignatureAlgorithm": 400,
    "badPublicKey": 400,
    "badCSR": 400,
    "badRevocationReason": 400,
    "alreadyRevoked": 400,
    "accountDoesNotExist": 400,
    "externalAccountRequired": 400,
    "rejectedIdentifier": 400,
    "unsupportedIdentifier": 400,
    "invalidProfile": 400,
    "unauthorized": 403,
    "orderNotReady": 403,
    "conflict": 409,
    "alreadyReplaced": 409,
    "serverInternal": 500,
}
BY_KIND = {
    Kind.MALFORMED: "malformed",
    Kind.BAD_CSR: "badCSR",
    Kind.BAD_SIGNATURE_ALGORITHM: "badCSR",
    Kind.BAD_KEY: "badCSR",
    Kind.BAD_IDENTIFIER: "rejectedIdentifier",
    Kind.UNAUTHORIZED: "unauthorized",
    Kind.FORBIDDEN: "unauthorized",
    Kind.NOT_FOUND: "malformed",
    Kind.CONFLICT: "malformed",
    Kind.GONE: "malformed",
    Kind.UNAVAILABLE: "serverInternal",
    Kind.INTERNAL: "serverInternal",
}


def acme_problem(acme_type: str, detail: str, status: int | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": PREFIX + acme_type, "detail": detail}
    status = status or STATUS.get(acme_type, 400)
    body["status"] = status
    for key, value in extra.items():
        if key == "subproblems":
            value = [{**sub, "type": PREFIX + sub["type"]} for sub in value]
        body[key] = value
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 503:
        response.headers["Retry-After"] = "5"
    return response


def from_caerror(exc: CAError) -> Response:
    extra = dict(exc.extra)
    acme_type = str(extra.pop("acme", BY_KIND[exc.kind]))
    status = {Kind.NOT_FOUND: 404, Kind.UNAVAILABLE: 503}.get(exc.kind)
    if exc.kind is Kind.CONFLICT and acme_type == "malformed":
        status = 409
    return acme_problem(acme_type, exc.detail, status, **extra)
