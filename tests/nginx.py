"""Real TLS peers for tests: nginx (Debian's nginx-light) on loopback that checks client
certificates, curl as the device, and helpers to wait for and stop a server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, have

MAIN = """
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    {http}
}}
"""

CLIENT_CERT_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        ssl_client_certificate {client_ca};
        ssl_verify_client on;
        ssl_verify_depth 2;
        {crl}
        location / {{ return 200 "hello $ssl_client_s_dn\\n"; }}
    }}
"""

# OpenSSL 3.0 refuses SHA-1 signatures from security level 1; an old device still sends them.
CLIENT_LEVEL0 = """openssl_conf = init
[init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = sys
[sys]
CipherString = DEFAULT@SECLEVEL=0
"""


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path | None = None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:] if log and log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started with start_new_session=True (its whole process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_nginx(tmp: Path, http: str, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """Debian's nginx in the foreground with its files in ``tmp`` and ``http`` inside its http
    block; returns once it listens on ``port``. Fails the test when nginx or curl is missing."""
    if not (have("nginx") and have("curl")):
        pytest.fail("nginx and curl are needed; scripts/system-deps.sh installs them")
    error_log = tmp / "error.log"
    conf = tmp / "nginx.conf"
    conf.write_text(MAIN.format(tmp=tmp, http=http))
    proc = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(tmp), "-e", str(error_log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port(port, proc, error_log)
    return proc, error_log


class Nginx:
    """nginx requiring a client certificate that chains to ``client_ca`` (and, with ``crl``,
    is not revoked). Fails the test when nginx or curl is missing: CI installs both."""

    def __init__(
        self, tmp: Path, *, server_cert: Path, server_key: Path, client_ca: Path, crl: Path | None = None
    ) -> None:
        self.tmp = tmp
        self.port = free_port()
        http = CLIENT_CERT_SERVER.format(
            port=self.port,
            server_cert=server_cert,
            server_key=server_key,
            client_ca=client_ca,
            crl=f"ssl_crl {crl};" if crl else "",
        )
        self.proc, self.error_log = start_nginx(tmp, http, self.port)

    def get(self, cert: Path | None = None, key: Path | None = None) -> tuple[int, str]:
        """curl as the device: (HTTP status, body). Server authentication is not under test
        (-k). curl runs at security level 0 so that it sends even a SHA-1 signed certificate,
        as an old device does: nginx decides."""
        body = self.tmp / "body.txt"
        body.unlink(missing_ok=True)
        level0 = self.tmp / "client-openssl.cnf"
        level0.write_text(CLIENT_LEVEL0)
        args = ["curl", "-sS", "-k", "-o", str(body), "-w", "%{http_code}", f"https://127.0.0.1:{self.port}/"]
        if cert and key:
            args += ["--cert", str(cert), "--key", str(key)]
        result = subprocess.run(
            args, capture_output=True, timeout=30, env={**os.environ, "OPENSSL_CONF": str(level0)}
        )
        assert result.stdout, result.stderr
        return int(result.stdout), body.read_text() if body.exists() else ""

    def stop(self) -> None:
        stop(self.proc)
