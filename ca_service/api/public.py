"""Public, unauthenticated resources: CA certificates and health."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ca_service.api.auth import services
from ca_service.authority.issuer import pem
from ca_service.errors import CAError, Kind
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
    return _pem(services().issuers.get().root_pem)


@blp.route("/issuing.pem")
@blp.response(200, content_type=PEM)
def issuing() -> Response:
    """The issuing CA that signs new certificates, PEM."""
    _, issuer = services().issuers.get().signing()
    return _pem(pem(issuer.certificate))


@blp.route("/chain.pem")
@blp.response(200, content_type=PEM)
def chain() -> Response:
    """Every issuing CA that still signs (active and retiring), then the root, PEM."""
    issuers = services().issuers.get()
    return _pem("".join(pem(i.certificate) for i in issuers.by_id.values()) + issuers.root_pem)


@blp.route("/issuers/<string:name>.<any(pem, crt):fmt>")
@blp.response(200, content_type="application/pkix-cert")
def issuer_certificate(name: str, fmt: str) -> Response:
    """One issuing CA certificate by name: ``.crt`` is DER (the AIA caIssuers URL), ``.pem`` PEM."""
    issuers = services().issuers.get()
    issuer_id = issuers.ids.get(name)
    if issuer_id is None:
        raise CAError(Kind.NOT_FOUND, f"No issuing CA named '{name[:64]}'.")
    cert = issuers.by_id[issuer_id].certificate
    if fmt == "pem":
        return _pem(pem(cert))
    response = Response(cert.public_bytes(serialization.Encoding.DER), mimetype="application/pkix-cert")
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
        """Readiness: the database answers and the issuing key can sign. ``details`` reports trust
        anchors that expire within 90 days (they do not make the service unready)."""
        svc = services()
        checks = svc.readiness()
        ok = all(c == "ok" for c in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks, "details": svc.details()}
        return body, 200 if ok else 503
