"""Public, unauthenticated resources: CA certificates and health."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ca_service.api import examples
from ca_service.api.auth import services
from ca_service.api.openapi import BINARY, TEXT, Blueprint, problem_docs
from ca_service.api.schemas import HealthSchema
from ca_service.errors import CAError
from ca_service.metrics import TRUST_ANCHORS_EXPIRING, render
from ca_service.revocation.metrics import CrlCollector

blp = Blueprint("ca", __name__, url_prefix="/ca", description="CA certificates (public)")
health = Blueprint("health", __name__, description="Liveness and readiness")

PEM = "application/x-pem-file"
PKIX_CERT = "application/pkix-cert"
METRICS = CONTENT_TYPE_LATEST.split(";")[0]  # text/plain
CACHE = "public, max-age=3600"


def _pem(text: str) -> Response:
    response = Response(text, mimetype=PEM)
    response.headers["Cache-Control"] = CACHE
    return response


@blp.route("/root.pem")
@blp.doc(operationId="getRootCertificate")
@blp.response(200, TEXT, content_type=PEM, example=examples.CERT_PEM)
@problem_docs((503, "No CA yet"))
def root() -> Response:
    """The root CA certificate, PEM.

    The trust anchor of every certificate this service issues; cacheable for an hour.
    """
    return _pem(services().directory.get().root.pem)


@blp.route("/issuing.pem")
@blp.doc(operationId="getIssuingCertificate")
@blp.response(200, TEXT, content_type=PEM, example=examples.CERT_PEM)
@problem_docs((503, "No CA yet, or no active issuing CA"))
def issuing() -> Response:
    """The issuing CA certificate that signs new certificates, PEM.

    Only the active one; ``/ca/chain.pem`` has every issuing CA that still signs.
    """
    return _pem(services().directory.get().require_active().pem)


@blp.route("/chain.pem")
@blp.doc(operationId="getCaChain")
@blp.response(200, TEXT, content_type=PEM, example=examples.CERT_PEM + examples.CERT_PEM)
@problem_docs((503, "No CA yet"))
def chain() -> Response:
    """The CA chain, PEM.

    Every issuing CA that still signs (active and retiring), then the root.
    """
    cas = services().directory.get()
    return _pem("".join(ca.pem for ca in cas.signing.values()) + cas.root.pem)


@blp.route("/issuers/<string:name>.<any(pem, crt):fmt>")
@blp.doc(operationId="getIssuerCertificate")
@blp.response(200, BINARY, content_type=PKIX_CERT, description="The certificate: DER (.crt) or PEM (.pem)")
@blp.alt_response(200, schema=TEXT, content_type=PEM, example=examples.CERT_PEM, success=True)
@problem_docs((404, "None of our CAs has this name"))
def issuer_certificate(name: str, fmt: str) -> Response:
    """One of our CA certificates by name.

    ``.crt`` is DER (the AIA caIssuers URL in our certificates), ``.pem`` PEM.
    """
    ca = services().directory.get().by_name(name)
    if fmt == "pem":
        return _pem(ca.pem)
    response = Response(ca.der, mimetype=PKIX_CERT)
    response.headers["Cache-Control"] = CACHE
    return response


@health.route("/metrics")
@health.doc(operationId="getMetrics")
@health.response(200, TEXT, content_type=METRICS, example=examples.METRICS)
def metrics() -> Response:
    """Prometheus metrics, text format 0.0.4.

    Counters of all gunicorn workers, and the CRL and trust-bundle state read from the database
    (every worker answers alike). Not for the public network (see the nginx example).
    """
    state = CollectorRegistry(auto_describe=False)
    try:
        TRUST_ANCHORS_EXPIRING.set(len(services().bundle.expiring()))
        state.register(CrlCollector(services().revocation))
        shared = generate_latest(state)
    except CAError:
        shared = b""  # no CA yet or the database is down: /healthz says which
    return Response(render() + shared, mimetype=METRICS)


@health.route("/healthz")
class Health(MethodView):
    @health.doc(operationId="getHealth")
    @health.response(200, HealthSchema, example=examples.HEALTH)
    @health.alt_response(
        503,
        schema=HealthSchema,
        description="Not ready; 'checks' says why",
        example={
            **examples.HEALTH,
            "status": "unavailable",
            "checks": {
                **examples.HEALTH["checks"],
                "crl": "The CRL of issuing-20261201100000 is not published.",
            },
        },
    )
    def get(self) -> Any:
        """Readiness: the database answers and the issuing key can sign.

        Each of ``checks`` is "ok" or what is wrong; ``details.warnings`` names an external root
        CRL to import soon (RFC 5280 5.1.2.5 nextUpdate); ``details`` reports trust anchors that
        expire within 90 days (neither makes the service unready).
        """
        svc = services()
        checks = svc.readiness()
        ok = all(c == "ok" for c in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks, "details": svc.details()}
        return body, 200 if ok else 503
