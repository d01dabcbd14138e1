"""Public, unauthenticated resources: CA certificates and health."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ca_service.api.auth import services
from ca_service.errors import CAError
from ca_service.metrics import TRUST_ANCHORS_EXPIRING, render
from ca_service.revocation.metrics import CrlCollector

blp = Blueprint("ca", __name__, url_prefix="/ca", description="CA certificates (public)")
health = Blueprint("health", __name__, description="Liveness and readiness")

PEM = "application/x-pem-file"
CACHE = "public, max-age=3600"


def _pem(text: str) -> Response:
    response = Response(text, mimetype=PEM)
    response.headers["Cache-Control"] = CACHE
    return response


@blp.route("/root.pem")
@blp.response(200, content_type=PEM)
def root() -> Response:
    """The root CA certificate (the trust anchor), PEM."""
    return _pem(services().directory.get().root.pem)


@blp.route("/issuing.pem")
@blp.response(200, content_type=PEM)
def issuing() -> Response:
    """The issuing CA that signs new certificates, PEM."""
    return _pem(services().directory.get().require_active().pem)


@blp.route("/chain.pem")
@blp.response(200, content_type=PEM)
def chain() -> Response:
    """Every issuing CA that still signs (active and retiring), then the root, PEM."""
    cas = services().directory.get()
    return _pem("".join(ca.pem for ca in cas.signing.values()) + cas.root.pem)


@blp.route("/issuers/<string:name>.<any(pem, crt):fmt>")
@blp.response(200, content_type="application/pkix-cert")
def issuer_certificate(name: str, fmt: str) -> Response:
    """One of our CA certificates by name: ``.crt`` is DER (the AIA caIssuers URL), ``.pem`` PEM."""
    ca = services().directory.get().by_name(name)
    if fmt == "pem":
        return _pem(ca.pem)
    response = Response(ca.der, mimetype="application/pkix-cert")
    response.headers["Cache-Control"] = CACHE
    return response


@health.route("/metrics")
@health.response(200, content_type=CONTENT_TYPE_LATEST)
def metrics() -> Response:
    """Prometheus metrics: counters of all gunicorn workers, and the CRL and trust-bundle state
    read from the database (every worker answers alike)."""
    state = CollectorRegistry(auto_describe=False)
    try:
        TRUST_ANCHORS_EXPIRING.set(len(services().bundle.expiring()))
        state.register(CrlCollector(services().revocation))
        shared = generate_latest(state)
    except CAError:
        shared = b""  # no CA yet or the database is down: /healthz says which
    return Response(render() + shared, mimetype=CONTENT_TYPE_LATEST.split(";")[0])


@health.route("/healthz")
class Health(MethodView):
    @health.response(200)
    @health.alt_response(503, description="Not ready; 'checks' says why")
    def get(self) -> Any:
        """Readiness: the database answers and the issuing key can sign. ``details.warnings`` names
        an external root CRL to import soon (RFC 5280 5.1.2.5 nextUpdate); ``details`` reports trust
        anchors that expire within 90 days (they do not make the service unready)."""
        svc = services()
        checks = svc.readiness()
        ok = all(c == "ok" for c in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks, "details": svc.details()}
        return body, 200 if ok else 503
