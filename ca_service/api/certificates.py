"""/api/v1/certificates: issue on CSR, fetch, search."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ca_service.api.auth import ANY_ROLE, SECURITY, WRITERS, principal, require, services
from ca_service.api.idempotency import idempotent, writes
from ca_service.api.problems import page_window
from ca_service.api.schemas import (
    CertificateQuerySchema,
    CertificateSchema,
    IssueRequestSchema,
    ProblemSchema,
    ProfileSchema,
)
from ca_service.domain import IssuedCertificate, parse_serial

blp = Blueprint("certificates", __name__, url_prefix="/api/v1", description="Device certificates")

PEM_CHAIN = "application/pem-certificate-chain"


def pem_chain(cert: IssuedCertificate) -> Response:
    return Response(cert.certificate_pem + cert.chain_pem, mimetype=PEM_CHAIN)


def _issued(cert: IssuedCertificate) -> tuple[IssuedCertificate, int, dict[str, str]]:
    return cert, 201, {"Location": f"/api/v1/certificates/{cert.serial}"}


@blp.route("/certificates")
class Certificates(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(IssueRequestSchema)
    @blp.response(201, CertificateSchema)
    @blp.alt_response(
        400, schema=ProblemSchema, description="Unreadable CSR", content_type="application/problem+json"
    )
    @blp.alt_response(
        422, schema=ProblemSchema, description="Refused by policy", content_type="application/problem+json"
    )
    @blp.alt_response(
        403,
        schema=ProblemSchema,
        description="MAC outside the token's scope",
        content_type="application/problem+json",
    )
    @require(*WRITERS)
    @idempotent(lambda serial: _issued(services().enrollment.certificate(serial, principal())))
    def post(self, body: dict[str, Any]) -> Any:
        """Issue a device certificate from a CSR.

        The CSR's CN and/or SAN dNSNames must name the device MAC (any common spelling); the
        certificate carries the canonical 12-digit form. Everything else the CSR asks for is
        ignored: the profile decides. Send an ``Idempotency-Key`` header to retry safely: a
        retry with the same key and body answers the same certificate instead of a second one.
        """
        replaces = parse_serial(body["replaces"]) if body.get("replaces") else None
        cert = services().enrollment.issue(
            body["csr"], principal(), body.get("profile"), replaces=replaces, also=writes()
        )
        return _issued(cert)

    @blp.doc(security=SECURITY)
    @blp.arguments(CertificateQuerySchema, location="query")
    @blp.response(200, CertificateSchema(many=True))
    @blp.paginate()
    @require(*ANY_ROLE)
    def get(self, query: dict[str, Any], pagination_parameters: Any) -> Any:
        """Search certificates by MAC, status and expiry, newest first."""
        offset, limit = page_window(pagination_parameters)
        items, total = services().enrollment.search(
            principal(),
            mac=query.get("mac"),
            status=query.get("status"),
            expires_before=query.get("expires_before"),
            offset=offset,
            limit=limit,
        )
        pagination_parameters.item_count = total
        return items


@blp.route("/certificates/<string:serial>")
class Certificate(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, CertificateSchema, content_type="application/json")
    @blp.alt_response(200, description="The certificate and its chain", content_type=PEM_CHAIN, success=True)
    @blp.alt_response(
        404, schema=ProblemSchema, description="Unknown serial", content_type="application/problem+json"
    )
    @require(*ANY_ROLE)
    def get(self, serial: str) -> Any:
        """One certificate by serial (hex, colons allowed). Send
        ``Accept: application/pem-certificate-chain`` for the PEM leaf + chain."""
        cert = services().enrollment.certificate(parse_serial(serial), principal())
        if request.accept_mimetypes.best_match(["application/json", PEM_CHAIN]) == PEM_CHAIN:
            return pem_chain(cert)
        return cert


@blp.route("/profiles")
class Profiles(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, ProfileSchema(many=True))
    @require(*ANY_ROLE)
    def get(self) -> Any:
        """The certificate profiles this service issues under."""
        return list(services().settings.profiles)
