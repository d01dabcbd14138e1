"""/api/v1/certificates: issue on CSR, fetch, search."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from ca_service.api import examples
from ca_service.api.auth import ANY_ROLE, WRITERS, principal, require, services
from ca_service.api.idempotency import idempotent, writes
from ca_service.api.openapi import TEXT, Blueprint, problem_docs
from ca_service.api.problems import page_window
from ca_service.api.schemas import (
    CertificateQuerySchema,
    CertificateSchema,
    IssueRequestSchema,
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
    @blp.doc(operationId="issueCertificate")
    @blp.arguments(IssueRequestSchema, example={"csr": examples.CSR_PEM, "profile": "device"})
    @blp.response(201, CertificateSchema, example=examples.CERTIFICATE)
    @problem_docs(
        (400, "Unreadable CSR"),
        (403, "The MAC is outside the token's scope"),
        (404, "Unknown profile, or 'replaces' names no certificate of this MAC"),
        (409, "The certificate named in 'replaces' was replaced already"),
        (422, "Refused by policy: key type or size, signature algorithm, not a device MAC"),
        (429, "An issuance rate limit is reached; see Retry-After"),
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

    @blp.doc(operationId="searchCertificates")
    @blp.arguments(CertificateQuerySchema, location="query")
    @blp.response(200, CertificateSchema(many=True), example=[examples.CERTIFICATE])
    @blp.paginate()
    @require(*ANY_ROLE)
    def get(self, query: dict[str, Any], pagination_parameters: Any) -> Any:
        """Search certificates by MAC, status and expiry.

        Newest first, only those in the token's scope; paginated (``page``, ``page_size``; the
        total is in ``X-Pagination``).
        """
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
    @blp.doc(operationId="getCertificate")
    @blp.response(200, CertificateSchema, content_type="application/json", example=examples.CERTIFICATE)
    @blp.alt_response(
        200,
        schema=TEXT,
        example=examples.CERT_PEM + examples.CERT_PEM,
        description="The certificate (JSON), or its PEM leaf and chain",
        content_type=PEM_CHAIN,
        success=True,
    )
    @problem_docs((400, "Not a hex serial"), (404, "Unknown serial, or one outside the token's scope"))
    @require(*ANY_ROLE)
    def get(self, serial: str) -> Any:
        """One certificate by serial.

        The serial is hex as ``openssl x509 -serial`` prints it (colons allowed). Send
        ``Accept: application/pem-certificate-chain`` for the PEM leaf followed by its chain.
        """
        cert = services().enrollment.certificate(parse_serial(serial), principal())
        if request.accept_mimetypes.best_match(["application/json", PEM_CHAIN]) == PEM_CHAIN:
            return pem_chain(cert)
        return cert


@blp.route("/profiles")
class Profiles(MethodView):
    @blp.doc(operationId="listProfiles")
    @blp.response(200, ProfileSchema(many=True), example=[examples.PROFILE])
    @require(*ANY_ROLE)
    def get(self) -> Any:
        """The certificate profiles this service issues under.

        A profile fixes validity, key usage, extended key usage, SAN and the key types a CSR may
        have; ``POST /certificates`` names one (default ``device``).
        """
        return list(services().settings.profiles)
