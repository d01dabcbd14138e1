"""gunicorn configuration for ca-service (`ca-service serve` uses it; so can a systemd unit:
`gunicorn -c deploy/gunicorn.conf.py 'ca_service:create_app()'`).

Workers are sync workers (steadier than gthread under keep-alive load on this hardware, see
shared/measurements.md). The app is not preloaded: each worker opens its own database
connections and key store sessions (PKCS#11 sessions must not cross a fork).
"""

import json
import multiprocessing
import os

bind = os.environ.get("CA_SERVICE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("CA_SERVICE_WORKERS") or 0) or max(2, multiprocessing.cpu_count() * 2)
worker_class = "sync"
preload_app = False
timeout = 30
graceful_timeout = 20
keepalive = 5
# Request-size limits of gunicorn itself; the app caps bodies (413 problem) separately.
limit_request_line = 8190
limit_request_fields = 100

if os.environ.get("CA_SERVICE_ACCESS_LOG", "").lower() in ("1", "true", "yes"):
    accesslog = "-"
    access_log_format = json.dumps(
        {
            "ts": "%(t)s",
            "remote": "%(h)s",
            "method": "%(m)s",
            "path": "%(U)s",
            "status": "%(s)s",
            "bytes": "%(B)s",
            "duration_us": "%(D)s",
            "request_id": "%({x-request-id}o)s",
        }
    )
errorlog = "-"
loglevel = os.environ.get("CA_SERVICE_LOG_LEVEL", "info").lower()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Each worker runs a CRL publisher thread; the database lease picks who regenerates."""
    services = worker.wsgi.extensions.get("ca_service")
    if services is not None:
        services.publisher.start()
