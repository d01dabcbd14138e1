"""gunicorn configuration for ca-service. `ca-service serve` passes this file to gunicorn by its
path; deploy/gunicorn.conf.py links to it for `gunicorn -c deploy/gunicorn.conf.py
'ca_service:create_app()'` in a source tree. gunicorn executes it as a file, not as a module of
the package: the master imports no service code, so a reload (HUP) after an upgrade starts
workers on the new code. Its log lines are the service's JSON lines: it loads
ca_service/logs.py (standard library only) by its file path, not as a module of the package.

Workers are sync workers (steadier than gthread under keep-alive load on this hardware, see
shared/measurements.md). The app is not preloaded: each worker opens its own database
connections and key store sessions (PKCS#11 sessions must not cross a fork).
"""

import importlib.util
import multiprocessing
import os
import re
from pathlib import Path
from urllib.parse import unquote

from gunicorn.glogging import Logger

# a one-time download path after normalisation, and anything else under /provisioning/
_DOWNLOAD_PATH = re.compile(r"/provisioning/(?:(cert|key)/[^?#\s\"]*|[^?#\s\"]*)", re.IGNORECASE)
_SLASHES = re.compile(r"/{2,}")


def redact_download_tokens(text: str) -> str:
    """``text`` (a request path or request line) without the tokens of one-time download URLs.
    Percent-escapes are decoded and repeated slashes merged first, as the router does, so
    ``/provisioning//key/<token>`` or ``/provisioning/%6Bey/<token>`` are redacted too. A
    download path becomes ``/provisioning/key/(redacted)``, any other path under /provisioning/
    ``/provisioning/(redacted)``; text without one is returned unchanged."""
    normal = _SLASHES.sub("/", unquote(text))
    if "/provisioning/" not in normal.lower():
        return text

    def redact(match: re.Match[str]) -> str:
        kind = match.group(1)
        return f"/provisioning/{kind.lower()}/(redacted)" if kind else "/provisioning/(redacted)"

    return _DOWNLOAD_PATH.sub(redact, normal)


def _service_logs():  # type: ignore[no-untyped-def]
    """ca_service/logs.py as a module of its own name (the package is not imported)."""
    spec = importlib.util.spec_from_file_location(
        "ca_service_gunicorn_logs", Path(__file__).resolve().with_name("logs.py")
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_logs = _service_logs()


class RedactingLogger(Logger):
    """gunicorn's error and access logs as the service's JSON lines (``ts``, ``level``,
    ``logger``, ``msg``, ``pid`` and fields); access lines with numbers as numbers and without
    the secret of one-time download URLs (/provisioning/key/<token>)."""

    def setup(self, cfg):  # type: ignore[no-untyped-def]
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(_logs.JsonFormatter())

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_download_tokens(atoms[key])
        return atoms

    def access(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        if self.cfg.accesslog is None:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        status = str(atoms["s"])
        fields = {
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],
            "status": int(status) if status.isdigit() else status,
            "bytes": atoms["B"],
            "duration_ms": round(atoms["D"] / 1000, 3),
            "request_id": atoms.get("{x-request-id}o"),
            "user_agent": atoms["a"],
        }
        self.access_log.info("%s %s %s", atoms["m"], atoms["U"], status, extra=fields)


logger_class = RedactingLogger

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
# gunicorn >= 25.1 opens a control socket at $XDG_RUNTIME_DIR/gunicorn.ctl or
# $HOME/.gunicorn/gunicorn.ctl, one path for every instance of the user: each master would delete
# and recreate the others'. The service is managed by signals (HUP, TERM), not gunicornc.
control_socket_disable = True


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Once per worker after the fork: the start-up signing self-test opens this worker's key
    store session (PKCS#11 sessions are per process) and signs a test message; a failure does
    not stop the worker, /healthz answers 503 with the reason until the key store can sign.
    Then the worker's CRL publisher thread starts; a database lease picks who regenerates."""
    services = worker.wsgi.extensions["ca_service"]
    worker.log.info("start-up self-test", extra={"checks": services.readiness()})
    services.publisher.start()


if os.environ.get("CA_SERVICE_ACCESS_LOG", "").lower() in ("1", "true", "yes"):
    accesslog = "-"  # stdout; one JSON line per request (RedactingLogger.access)
errorlog = "-"
loglevel = os.environ.get("CA_SERVICE_LOG_LEVEL", "info").lower()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """In the worker, as it exits (SIGTERM of the master, a restart, max-requests): stop the CRL
    publisher and release its leases, so another worker or host publishes without waiting for
    them to run out."""
    app = getattr(worker, "wsgi", None)  # None: the worker failed to boot
    services = getattr(app, "extensions", {}).get("ca_service")
    if services is not None:
        services.publisher.stop()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """Drop a dead worker's live gauges from the multiprocess metrics folder."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
