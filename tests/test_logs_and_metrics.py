"""Logs and metrics for operators: every log line of a request carries its request id (the
client's X-Request-Id when well-formed); gunicorn's error and access lines are the same JSON
shape; /metrics has build information and the service's processes; a second 'serve' on the
same home leaves the running server's metrics alone."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from ca_service.logs import JsonFormatter
from tests.helpers import REPO, free_port, make_csr

UUID = "0f0e3c2a-6b1d-4d8e-9a57-3f2b8c1d9e40"


def test_a_well_formed_request_id_is_kept_and_on_every_line(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path
) -> None:
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("ca_service").addHandler(handler)
    try:
        issued = client.post(
            "/api/v1/certificates", json={"csr": csr.read_text()}, headers={**admin, "X-Request-Id": UUID}
        )
    finally:
        logging.getLogger("ca_service").removeHandler(handler)
    assert issued.status_code == 201 and issued.headers["X-Request-Id"] == UUID
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    issued_line = next(line for line in lines if line["msg"] == "certificate issued")
    assert issued_line["request_id"] == UUID and issued_line["pid"] == os.getpid()
    assert all(line.get("request_id") == UUID for line in lines)
    for bad in ("short", "x" * 65, "has space in it", "semi;colon-0123456789"):
        answered = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert answered != bad and len(answered) == 16


@pytest.mark.slow  # ca-service serve (gunicorn) twice
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_served_logs_and_metrics(env_for: dict[str, str], tmp_path: Path) -> None:
    home = Path(env_for["CA_SERVICE_HOME"])
    env = {**os.environ, **env_for, "CA_SERVICE_WORKERS": "2", "CA_SERVICE_ACCESS_LOG": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    def serve(port: int, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "ca_service.cli", "serve", "--bind", f"127.0.0.1:{port}"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    def wait(url: str, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "service did not start"
            time.sleep(0.2)

    first_port, second_port = free_port(), free_port()
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = serve(first_port, first_log)
    second = None
    try:
        url = f"http://127.0.0.1:{first_port}"
        wait(url, first)
        token = (home / "admin-token").read_text().strip()
        _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
        issued = requests.post(
            url + "/api/v1/certificates",
            json={"csr": csr.read_text()},
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": UUID},
            timeout=10,
        )
        assert issued.status_code == 201
        metrics = requests.get(url + "/metrics", timeout=10).text
        assert 'ca_build_info{python="' in metrics and 'version="' in metrics
        roles = {
            line.split('role="')[1].split('"')[0]
            for line in metrics.splitlines()
            if "ca_process_cpu" in line and "role=" in line
        }
        assert roles == {"master", "worker"}
        assert metrics.count("ca_process_resident_memory_bytes{") == 3  # the master and two workers
        folders = list((home / "metrics").iterdir())
        assert [f.name for f in folders] == [str(first.pid)]  # gunicorn kept the pid of serve

        # a second instance on the same home (another port) keeps the first's metrics
        second = serve(second_port, second_log)
        wait(f"http://127.0.0.1:{second_port}", second)
        assert (home / "metrics" / str(first.pid)).is_dir()
        assert "ca_certificates_issued_total{" in requests.get(url + "/metrics", timeout=10).text
        assert len(list((home / "metrics").iterdir())) == 2
    finally:
        for proc in (first, second):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)

    text = first_log.read_text().splitlines()
    served = [line for line in text if line.startswith("{")]
    # the CLI's own lines come first; from gunicorn's start on, every line is a JSON object
    started = next(i for i, line in enumerate(text) if line.startswith("{"))
    assert all(line.startswith("{") for line in text[started:]), text[started:]
    entries = [json.loads(line) for line in served]
    assert {"ts", "level", "logger", "msg", "pid"} <= set(entries[0])
    assert any(e["logger"] == "gunicorn.error" and e["msg"].startswith("Listening at") for e in entries)
    access = next(
        e for e in entries if e["logger"] == "gunicorn.access" and e.get("path") == "/api/v1/certificates"
    )
    assert access["status"] == 201 and isinstance(access["bytes"], int) and access["request_id"] == UUID
    assert access["ts"].endswith("+00:00") and isinstance(access["duration_ms"], float)
    app_line = next(e for e in entries if e["msg"] == "certificate issued")
    assert app_line["request_id"] == UUID
    self_test = next(e for e in entries if e["msg"] == "start-up self-test")
    assert self_test["checks"]["keystore"] == "ok"
