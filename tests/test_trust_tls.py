"""The trust bundle in real TLS servers: nginx with ssl_verify_client, and `trust capture`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from ca_service.bundle.anchors import fingerprint, load_certificates
from tests.helpers import REPO, free_port, openssl, self_signed
from tests.nginx import Nginx, stop, wait_for_port
from tests.trust_helpers import import_gigaset_anchors, issue_ours, vector

pytestmark = pytest.mark.slow


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator:
    started: list[Nginx] = []

    def start(bundle: Path, name: str) -> Nginx:
        folder = tmp_path / name
        folder.mkdir()
        self_signed(
            folder / "server.key", folder / "server.pem", "/CN=provisioning.test",
            ext=("subjectAltName=IP:127.0.0.1",),
        )  # fmt: skip
        server = Nginx(
            folder, server_cert=folder / "server.pem", server_key=folder / "server.key", client_ca=bundle
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


DEVICE_FILES = ("factory-einstein2", "factory-mac", "factory-sha1", "technologies-p256", "unlisted-device")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_nginx_with_the_bundle(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path, nginx_factory
) -> None:
    import_gigaset_anchors(client, admin)
    ours_cert, ours_key, _ = issue_ours(client, admin, tmp_path)
    devices = {name: (vector(f"{name}.pem"), vector(f"{name}.key")) for name in DEVICE_FILES}
    devices["ours"] = (ours_cert, ours_key)
    expected = {
        "": {"factory-einstein2", "factory-mac", "technologies-p256", "ours"},
        "?firmware=2.59": {"factory-einstein2", "factory-mac", "ours"},
        "?firmware=2.61": {"technologies-p256", "ours"},
    }
    for i, (query, accepted) in enumerate(expected.items()):
        bundle = tmp_path / f"bundle{i}.pem"
        bundle.write_bytes(client.get("/trust/bundle.pem" + query).data)
        server = nginx_factory(bundle, f"nginx{i}")
        got = {}
        for name, (cert, key) in devices.items():
            status, body = server.get(cert, key)
            got[name] = status
            if status == 200:
                assert body.startswith("hello ") and "CN=" in body
        assert {n for n, s in got.items() if s == 200} == accepted, (query, got)
        # refused ones get nginx's "400 The SSL certificate error", never a 5xx or a hang
        assert {s for n, s in got.items() if n not in accepted} <= {400}, got
    # SHA-1: 'openssl verify' accepts its chain, but nginx at OpenSSL 3.0's default security level
    # refuses it, as device software >= 2.57 does
    log = (tmp_path / "nginx0" / "error.log").read_text()
    assert "client SSL certificate verify error: (68:CA signature digest algorithm too weak)" in log


def test_trust_capture_records_the_presented_chain(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "captured"
    log = tmp_path / "capture.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ca_service.cli", "trust", "capture", "--listen", f"127.0.0.1:{port}",
             "--out", str(out), "--count", "4"],
            stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "CA_SERVICE_HOME": str(tmp_path / "home")},
        )  # fmt: skip
    try:
        wait_for_port(port, proc, log)  # this probe is the first of the 4 connections: no TLS at all
        tech = vector("technologies-p256.pem")
        device_ca = vector("gigaset-tech-device-ca.pem")
        clients = [
            ["-cert", str(tech), "-key", str(vector("technologies-p256.key")), "-cert_chain", str(device_ca)],
            ["-cert", str(vector("factory-mac.pem")), "-key", str(vector("factory-mac.key"))],
            [],  # a client without a certificate is let in and reported
        ]
        for args in clients:
            result = openssl(
                "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "capture.test", *args,
                input=b"GET /7C2F80C6E5C3.xml HTTP/1.0\r\n\r\n", check=False,
            )  # fmt: skip
            assert b"BEGIN CERTIFICATE" in result.stdout  # the capture server's own certificate
        proc.wait(30)
    finally:
        stop(proc)
    text = log.read_text()
    assert proc.returncode == 0, text
    tech_fp = fingerprint(load_certificates(tech.read_bytes())[0])
    ca_fp = fingerprint(load_certificates(device_ca.read_bytes())[0])
    assert "[0] subject: CN=7C2F80C6E5C3,O=Gigaset Technologies GmbH,C=DE" in text
    assert f"sha256:  {tech_fp}" in text and f"sha256:  {ca_fp}" in text
    sha1 = openssl("x509", "-in", str(tech), "-noout", "-fingerprint", "-sha1").stdout.decode()
    assert f"sha1:    {sha1.split('=')[1].strip().replace(':', '').lower()}" in text
    assert "[1] subject: CN=Gigaset Technologies Device CA" in text
    assert "--purpose gigaset-technologies" in text
    assert "issuer:  CN=Gigaset.net,OU=Certificate Authority,O=Gigaset Communications GmbH" in text
    assert "the device sent only its own certificate" in text and "--purpose gigaset-factory" in text
    assert text.count("no client certificate was presented") == 1
    saved = sorted(out.glob("*-chain.pem"))
    chains = {
        fingerprint(load_certificates(p.read_bytes())[0]): load_certificates(p.read_bytes()) for p in saved
    }
    assert [fingerprint(c) for c in chains[tech_fp]] == [tech_fp, ca_fp]
    mac_fp = fingerprint(load_certificates(vector("factory-mac.pem").read_bytes())[0])
    assert [fingerprint(c) for c in chains[mac_fp]] == [mac_fp]
    # the saved CA certificate is exactly what an operator imports
    assert (out / f"{tech_fp[:16]}-1.pem").read_bytes() == device_ca.read_bytes()
