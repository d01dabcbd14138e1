"""Prometheus metrics. Under gunicorn, ``ca-service serve`` sets PROMETHEUS_MULTIPROC_DIR so that
``/metrics`` sums every worker (prometheus_client multiprocess mode)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

CERTIFICATES_ISSUED = Counter(
    "ca_certificates_issued_total", "Certificates issued and committed", ["profile", "issuer"]
)
ISSUANCE_REFUSED = Counter("ca_issuance_refused_total", "Issuance requests refused by policy", ["kind"])
# the methods this service answers (RFC 9110 section 9); any other is refused before routing and
# counted as "other", so a client cannot grow the label set (nor the multiprocess files)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_REQUESTS = Histogram(
    "ca_http_request_duration_seconds",
    "HTTP requests by endpoint and status",
    ["method", "endpoint", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
# one-time download URLs whose token is unknown: counted and logged, never written to the database
DOWNLOAD_PROBES = Counter(
    "ca_download_unknown_token_total", "Downloads asked for with a token that does not exist", ["kind"]
)

# set by the worker that answers the scrape, from the database (multiprocess: the latest value wins)
TRUST_ANCHORS_EXPIRING = Gauge(
    "ca_trust_anchors_expiring",
    "Trust bundle certificates that expire within 90 days or have expired",
    multiprocess_mode="livemostrecent",
)


def render() -> bytes:
    """The text exposition of every metric (of every worker in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


def method_label(method: str) -> str:
    """The ``method`` label of a request: the method when it is one of :data:`HTTP_METHODS`,
    else ``other`` (labels are a fixed set whatever clients send)."""
    return method if method in HTTP_METHODS else "other"
