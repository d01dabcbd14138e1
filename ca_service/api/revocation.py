"""Revocation: the revoke endpoints (authenticated), CRLs and OCSP (public, cacheable)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Response, request, send_file
from flask.views import MethodView
from werkzeug.routing import PathConverter

from ca_service.api import examples
from ca_service.api.auth import WRITERS, principal, require, services
from ca_service.api.idempotency import idempotent, writes
from ca_service.api.openapi import BINARY, TEXT, Blueprint, problem_docs, upload
from ca_service.api.schemas import RevocationSchema, RevokeRequestSchema
from ca_service.errors import CAError, Kind

F = TypeVar("F")

blp = Blueprint("revocation", __name__, url_prefix="/api/v1", description="Revoking certificates")
crl = Blueprint("crl", __name__, url_prefix="/crl", description="CRLs (public, cacheable)")
ocsp = Blueprint("ocsp", __name__, description="OCSP responder (RFC 6960)")


class OcspPath(PathConverter):
    """Anything after /ocsp/, line breaks too (werkzeug's ``path`` stops at one, and the request
    would be a 404): whatever is not base64 of an OCSPRequest is answered malformedRequest."""

    regex = "(?s:.+)"
    part_isolating = False  # it spans slashes (base64 has them)


ocsp.record_once(lambda state: state.app.url_map.converters.setdefault("ocsp_path", OcspPath))

PKIX_CRL = "application/pkix-crl"
OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
PEM = "application/x-pem-file"
REVOKE_EXAMPLE = {"reason": "keyCompromise", "invalidity_date": "2026-11-30T00:00:00Z"}
# an OCSP answer that is not 'successful' is itself a DER OCSPResponse (RFC 6960 section 2.3)
OCSP_ANSWERS = {
    400: "malformedRequest: not a DER OCSPRequest, or more than one certificate asked",
    503: "tryLater: the database is away and no answer is cached",
}


@blp.route("/certificates/<string:serial>/revoke")
class RevokeCertificate(MethodView):
    @blp.doc(operationId="revokeCertificate")
    @blp.arguments(RevokeRequestSchema, example=REVOKE_EXAMPLE)
    @blp.response(200, RevocationSchema, example=examples.REVOCATION)
    @problem_docs(
        (400, "Not a hex serial, unknown reason name or invalidity date in the future"),
        (404, "Unknown serial (or outside the token's scope)"),
        (409, "Already revoked"),
    )
    @require(*WRITERS)
    @idempotent(lambda serials: services().revocation.revoked(serials.split(","))[0])
    def post(self, body: dict[str, Any], serial: str) -> Any:
        """Revoke one certificate.

        An RFC 5280 reason name and, optionally, the invalidity date. The CRL is regenerated in
        the background within seconds; OCSP answers 'revoked' at once. With an ``Idempotency-Key``
        a retry answers the same revocation instead of a 409.
        """
        return services().revocation.revoke(
            serial, body["reason"], body.get("invalidity_date"), principal(), also=writes()
        )


@blp.route("/devices/<string:mac>/revoke")
class RevokeDevice(MethodView):
    @blp.doc(operationId="revokeDevice")
    @blp.arguments(RevokeRequestSchema, example=REVOKE_EXAMPLE)
    @blp.response(200, RevocationSchema(many=True), example=[examples.REVOCATION])
    @problem_docs(
        (400, "Unknown reason name or invalidity date in the future"),
        (403, "The MAC is outside the token's scope"),
        (404, "Unknown device"),
        (409, "No unexpired certificate left to revoke"),
        (422, "Not a device MAC"),
    )
    @require(*WRITERS)
    @idempotent(lambda serials: services().revocation.revoked([s for s in serials.split(",") if s]))
    def post(self, body: dict[str, Any], mac: str) -> Any:
        """Revoke every unexpired, unrevoked certificate of a device.

        One reason for all; with an ``Idempotency-Key`` a retry answers the same list.
        """
        return services().revocation.revoke_device(
            mac, body["reason"], body.get("invalidity_date"), principal(), also=writes()
        )


def _http_date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


@crl.route("/<string:name>.<any(crl, pem):fmt>")
@crl.doc(operationId="getCrl")
@crl.response(200, BINARY, content_type=PKIX_CRL, description="The CRL: DER (.crl) or PEM (.pem)")
@crl.alt_response(200, schema=TEXT, content_type=PEM, example=examples.CRL_PEM, success=True)
@crl.alt_response(304, description="Not modified (If-None-Match or If-Modified-Since)", success=True)
@problem_docs((404, "No issuing CA of that name"), (503, "No CRL of this CA published yet"))
def crl_file(name: str, fmt: str) -> Any:
    """The full CRL of an issuing CA or of the root.

    ``.crl`` is DER (the URL in the CRL distribution point of our device and issuing CA
    certificates), ``.pem`` PEM. Stored bytes (sent from a file of this host), with ETag,
    Last-Modified and caching bounded by nextUpdate. An external root's CRL is the one imported
    last (``ca-service crl import``).
    """
    svc = services()
    try:
        published = svc.revocation.published(name)
    except CAError as exc:
        if exc.kind is Kind.UNAVAILABLE:
            svc.publisher.poke()
        raise
    response = send_file(
        published.file(fmt),
        mimetype=PKIX_CRL if fmt == "crl" else "application/x-pem-file",
        conditional=False,  # the ETag and dates are the CRL's own (_cacheable)
        etag=False,
        max_age=None,
    )
    etag = f"{name}-{published.number}-{fmt}"
    return _cacheable(response, published.next_update, published.this_update, etag, "crl")


def _ocsp_response(der: bytes) -> Response:
    answer = services().ocsp.respond(der)
    ok = answer.status.name == "SUCCESSFUL"
    later = answer.status.name == "TRY_LATER"  # the database is away and nothing is cached
    response = Response(answer.der, status=200 if ok else 503 if later else 400, mimetype=OCSP_RESPONSE)
    if later:
        response.headers["Retry-After"] = "5"
    if ok and request.method == "GET" and answer.next_update is not None and answer.this_update is not None:
        return _cacheable(response, answer.next_update, answer.this_update, answer.etag, "ocsp")
    response.headers["Cache-Control"] = "no-store"
    return response


def _cacheable(
    response: Response, next_update: datetime, this_update: datetime, etag: str, kind: str
) -> Response:
    """HTTP caching of a CRL or an OCSP GET answer (RFC 5019 section 6.2): ETag, Last-Modified
    (thisUpdate), Expires (nextUpdate) and a max-age of at most ``crl_cache_seconds`` or
    ``ocsp_cache_seconds`` that never reaches past nextUpdate; 304 to a matching
    If-None-Match or If-Modified-Since."""
    settings = services().settings
    cap = settings.crl_cache_seconds if kind == "crl" else settings.ocsp_cache_seconds
    remaining = int((next_update - services().clock.now()).total_seconds())
    max_age = max(0, min(cap, remaining))
    response.headers["Cache-Control"] = (
        f"public, max-age={max_age}, no-transform, must-revalidate" if max_age else "no-cache"
    )
    response.headers["Expires"] = _http_date(next_update)
    response.set_etag(etag)
    response.last_modified = this_update
    response.make_conditional(request)
    return response


def ocsp_answers(view: F) -> F:
    """Document the OCSP answers of an OCSP view: all DER OCSPResponses."""
    view = ocsp.response(200, BINARY, content_type=OCSP_RESPONSE, description="successful")(view)
    for status, description in OCSP_ANSWERS.items():
        view = ocsp.alt_response(status, schema=BINARY, content_type=OCSP_RESPONSE, description=description)(
            view
        )
    return view


@ocsp.route("/ocsp", methods=["POST"])
@ocsp.doc(operationId="ocspPost", requestBody={**upload(OCSP_REQUEST), "required": True})
@ocsp_answers
@problem_docs((400, f"The body is not {OCSP_REQUEST}"))
def ocsp_post() -> Response:
    """OCSP over POST (RFC 6960 appendix A.1).

    The body is a DER OCSPRequest of media type ``application/ocsp-request``; the answer a DER
    OCSPResponse, also for a malformed request (400) or when nothing can be answered now (503).
    """
    if request.mimetype != OCSP_REQUEST:
        raise CAError(Kind.MALFORMED, f"Send the OCSP request as {OCSP_REQUEST}.")
    return _ocsp_response(request.get_data())


@ocsp.route("/ocsp/<ocsp_path:encoded>", methods=["GET"])
@ocsp.doc(operationId="ocspGet")
@ocsp_answers
def ocsp_get(encoded: str) -> Response:
    """OCSP over GET (RFC 6960 appendix A.1).

    The path is the base64 DER OCSPRequest, URL-encoded; the answer a DER OCSPResponse, cacheable
    (RFC 5019 6.2): ETag, Last-Modified, Expires, max-age within nextUpdate, 304 to If-None-Match.
    """
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        der = b""
    return _ocsp_response(der)
