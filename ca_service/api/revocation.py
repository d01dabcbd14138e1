"""Revocation: the revoke endpoints (authenticated), CRLs and OCSP (public, cacheable)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ca_service.api.auth import SECURITY, WRITERS, principal, require, services
from ca_service.api.idempotency import idempotent, writes
from ca_service.api.problems import problem_docs
from ca_service.api.schemas import RevocationSchema, RevokeRequestSchema
from ca_service.errors import CAError, Kind

blp = Blueprint("revocation", __name__, url_prefix="/api/v1", description="Revoking certificates")
crl = Blueprint("crl", __name__, url_prefix="/crl", description="CRLs (public, cacheable)")
ocsp = Blueprint("ocsp", __name__, description="OCSP responder (RFC 6960)")

PKIX_CRL = "application/pkix-crl"
OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"


@blp.route("/certificates/<string:serial>/revoke")
class RevokeCertificate(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(RevokeRequestSchema)
    @blp.response(200, RevocationSchema)
    @problem_docs(
        blp,
        (400, "Unknown reason name or bad invalidity date"),
        (404, "Unknown serial (or outside the token's scope)"),
        (409, "Already revoked"),
    )
    @require(*WRITERS)
    @idempotent(lambda serials: services().revocation.revoked(serials.split(","))[0])
    def post(self, body: dict[str, Any], serial: str) -> Any:
        """Revoke one certificate (RFC 5280 reason name, optional invalidity date).

        The CRL is regenerated in the background within seconds; OCSP answers 'revoked' at once.
        With an ``Idempotency-Key`` a retry answers the same revocation instead of a 409.
        """
        return services().revocation.revoke(
            serial, body["reason"], body.get("invalidity_date"), principal(), also=writes()
        )


@blp.route("/devices/<string:mac>/revoke")
class RevokeDevice(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(RevokeRequestSchema)
    @blp.response(200, RevocationSchema(many=True))
    @problem_docs(
        blp,
        (400, "Unknown reason name or bad invalidity date"),
        (403, "MAC outside the token's scope"),
        (404, "Unknown device"),
        (409, "No unexpired certificate left to revoke"),
    )
    @require(*WRITERS)
    @idempotent(lambda serials: services().revocation.revoked([s for s in serials.split(",") if s]))
    def post(self, body: dict[str, Any], mac: str) -> Any:
        """Revoke every unexpired, unrevoked certificate of a device (``Idempotency-Key``: a
        retry answers the same list)."""
        return services().revocation.revoke_device(
            mac, body["reason"], body.get("invalidity_date"), principal(), also=writes()
        )


def _http_date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


@crl.route("/<string:name>.<any(crl, pem):fmt>")
@crl.response(200, content_type=PKIX_CRL)
def crl_file(name: str, fmt: str) -> Any:
    """The full CRL of an issuing CA or of the root: ``.crl`` is DER (the URL in the CRL
    distribution point of our device and issuing CA certificates), ``.pem`` PEM. Stored bytes,
    with ETag, Last-Modified and caching bounded by nextUpdate. An external root's CRL is the
    one imported last ('ca-service crl import')."""
    svc = services()
    try:
        published = svc.revocation.published(name)
    except CAError as exc:
        if exc.kind is Kind.UNAVAILABLE:
            svc.publisher.poke()
        raise
    body = published.der if fmt == "crl" else published.pem
    response = Response(body, mimetype=PKIX_CRL if fmt == "crl" else "application/x-pem-file")
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


@ocsp.route("/ocsp", methods=["POST"])
@ocsp.response(200, content_type=OCSP_RESPONSE)
def ocsp_post() -> Response:
    """OCSP over POST (RFC 6960 A.1): body is a DER OCSPRequest, ``application/ocsp-request``."""
    if request.mimetype != OCSP_REQUEST:
        raise CAError(Kind.MALFORMED, f"Send the OCSP request as {OCSP_REQUEST}.")
    return _ocsp_response(request.get_data())


@ocsp.route("/ocsp/<path:encoded>", methods=["GET"])
@ocsp.response(200, content_type=OCSP_RESPONSE)
def ocsp_get(encoded: str) -> Response:
    """OCSP over GET (RFC 6960 A.1): the base64 DER OCSPRequest, URL-encoded, as the path.
    Cacheable (RFC 5019 6.2): ETag, Last-Modified, Expires, max-age within nextUpdate, 304 to
    If-None-Match."""
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        der = b""
    return _ocsp_response(der)
