"""Prometheus metrics. Under gunicorn, ``ca-service serve`` sets PROMETHEUS_MULTIPROC_DIR so that
``/metrics`` sums every worker (prometheus_client multiprocess mode).

Besides the service's own metrics, every scrape reports ``ca_build_info`` (version, Python) and
the processes of the service (:class:`ServiceCollector`): under gunicorn the master and each
worker, else the one process, read from /proc at scrape time (prometheus_client's own process
metrics do not work in multiprocess mode).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


def _version() -> str:
    try:
        return importlib.metadata.version("ca-service")
    except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 on), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _is_gunicorn(pid: int) -> bool:
    try:
        return b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def service_processes() -> list[tuple[int, str]]:
    """(pid, role) of the processes of this service: the gunicorn master and its workers when
    this process is a gunicorn worker, else this process alone."""
    master = os.getppid()
    if not _is_gunicorn(master):
        return [(os.getpid(), "process")]
    workers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[1] == str(master):
            workers.append((int(entry.name), "worker"))
    return [(master, "master"), *sorted(workers)]


class ServiceCollector(Collector):
    """``ca_build_info`` and, per process of the service (labels pid and role), CPU seconds,
    resident memory, open file descriptors and start time, read from /proc at scrape time."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("ca_build_info", "The running ca-service", labels=["version", "python"])
        info.add_metric([_version(), platform.python_version()], 1)
        yield info
        labels = ["pid", "role"]
        cpu = CounterMetricFamily("ca_process_cpu_seconds", "CPU time of the process", labels=labels)
        rss = GaugeMetricFamily("ca_process_resident_memory_bytes", "Resident memory", labels=labels)
        fds = GaugeMetricFamily("ca_process_open_fds", "Open file descriptors", labels=labels)
        started = GaugeMetricFamily(
            "ca_process_start_time_seconds", "Start of the process, Unix time", labels=labels
        )
        tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
        boot = _boot_time()
        for pid, role in service_processes():
            fields = _stat(pid)
            if fields is None:  # gone meanwhile
                continue
            values = [str(pid), role]
            cpu.add_metric(values, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
            rss.add_metric(values, int(fields[21]) * page)
            started.add_metric(values, boot + int(fields[19]) / tick)
            try:
                fds.add_metric(values, len(os.listdir(f"/proc/{pid}/fd")))
            except OSError:  # another user's process (the master when workers drop privileges)
                pass
        yield from (cpu, rss, fds, started)


def _boot_time() -> float:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


REGISTRY.register(ServiceCollector())


def render() -> bytes:
    """The text exposition of every metric (of every worker in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(ServiceCollector())
        return generate_latest(registry)
    return generate_latest()


def method_label(method: str) -> str:
    """The ``method`` label of a request: the method when it is one of :data:`HTTP_METHODS`,
    else ``other`` (labels are a fixed set whatever clients send)."""
    return method if method in HTTP_METHODS else "other"
