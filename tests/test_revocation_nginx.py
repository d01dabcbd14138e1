"""nginx (Debian's package) on loopback checks device certificates against our chain and CRL:
a good device gets through, a revoked one is refused. The revocation and the root CRL are made
with the ``ca-service`` command, as an operator would."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import free_port, have
from tests.revocation_helpers import ca_files, issue

NGINX_CONF = """
worker_processes 1;
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
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {tmp}/server-chain.pem;
        ssl_certificate_key {tmp}/server.key;
        ssl_client_certificate {tmp}/ca-chain.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_crl {tmp}/crls.pem;
        location / {{ return 200 "hello $ssl_client_s_dn\\n"; }}
    }}
}}
"""


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "ca_service.cli", *args], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    if not have("nginx"):
        pytest.fail("nginx is not installed; scripts/system-deps.sh installs nginx-light")
    port = free_port()
    yield tmp_path, port
    pid = tmp_path / "nginx.pid"
    if pid.exists():
        subprocess.run(
            ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr", "-s", "stop"]
        )


def start_nginx(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen(
        ["nginx", "-p", str(tmp), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("nginx exited: " + proc.stdout.read().decode())  # type: ignore[union-attr]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nginx did not start")


def curl(tmp: Path, port: int, name: str | None) -> tuple[str, str]:
    """(HTTP status, body) of a GET with device certificate ``name`` (server auth is not the
    subject here: -k, the server certificate names a MAC, not 127.0.0.1)."""
    args = ["curl", "-sS", "-k", "-o", "-", "-w", "\n%{http_code}", f"https://127.0.0.1:{port}/"]
    if name:
        args += ["--cert", str(tmp / f"{name}.crt"), "--key", str(tmp / f"{name}.key")]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    body, _, status = out.rpartition("\n")
    return status, body.strip()


def test_nginx_refuses_revoked_device(
    client: FlaskClient, app: Flask, admin: dict[str, str], env_for: dict[str, str], nginx: tuple[Path, int]
) -> None:
    tmp, port = nginx
    root, issuing = ca_files(client, tmp)
    _, server = issue(client, admin, tmp, "7C2F800000AA", "server")
    issue(client, admin, tmp, "7C2F80000021", "good")
    bad_serial, _ = issue(client, admin, tmp, "7C2F80000022", "bad")
    cli(env_for, "revoke", bad_serial, "--reason", "keyCompromise", "--publish")
    cli(env_for, "crl", "root", "--out", str(tmp / "root-crl.pem"))
    name = app.extensions["ca_service"].issuers.get().signing()[1].name
    issuing_crl = client.get(f"/crl/{name}.pem").data
    (tmp / "crls.pem").write_bytes(issuing_crl + (tmp / "root-crl.pem").read_bytes())
    (tmp / "ca-chain.pem").write_bytes(issuing.read_bytes() + root.read_bytes())
    (tmp / "server-chain.pem").write_bytes(server.read_bytes() + issuing.read_bytes())
    proc = start_nginx(tmp, port)
    try:
        assert curl(tmp, port, "good") == ("200", "hello CN=7C2F80000021")
        status, body = curl(tmp, port, "bad")
        assert status == "400" and "SSL certificate error" in body
        assert curl(tmp, port, None)[0] == "400"  # no client certificate
    finally:
        proc.terminate()
        proc.wait(10)
    assert "certificate revoked" in (tmp / "error.log").read_text()
