"""nginx (Debian's package) on loopback checks device certificates against our chain and CRL:
a good device gets through, a revoked one is refused. The revocation and the root CRL are made
with the ``ca-service`` command, as an operator would."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import cli
from tests.nginx import Nginx
from tests.revocation_helpers import ca_files, issue

pytestmark = pytest.mark.slow  # nginx and CLI subprocesses


def test_nginx_refuses_revoked_device(
    client: FlaskClient, app: Flask, admin: dict[str, str], env_for: dict[str, str], tmp_path: Path
) -> None:
    tmp = tmp_path
    root, issuing = ca_files(client, tmp)
    _, server = issue(client, admin, tmp, "7C2F800000AA", "server")
    issue(client, admin, tmp, "7C2F80000021", "good")
    bad_serial, _ = issue(client, admin, tmp, "7C2F80000022", "bad")
    cli(env_for, "revoke", bad_serial, "--reason", "keyCompromise", "--publish")
    cli(env_for, "crl", "root", "--out", str(tmp / "root-crl.pem"))
    name = app.extensions["ca_service"].directory.get().require_active().name
    issuing_crl = client.get(f"/crl/{name}.pem").data
    (tmp / "crls.pem").write_bytes(issuing_crl + (tmp / "root-crl.pem").read_bytes())
    (tmp / "ca-chain.pem").write_bytes(issuing.read_bytes() + root.read_bytes())
    (tmp / "server-chain.pem").write_bytes(server.read_bytes() + issuing.read_bytes())
    server = Nginx(
        tmp,
        server_cert=tmp / "server-chain.pem",
        server_key=tmp / "server.key",
        client_ca=tmp / "ca-chain.pem",
        crl=tmp / "crls.pem",
    )
    try:
        assert server.get(tmp / "good.crt", tmp / "good.key") == (200, "hello CN=7C2F80000021\n")
        status, body = server.get(tmp / "bad.crt", tmp / "bad.key")
        assert status == 400 and "SSL certificate error" in body
        assert server.get()[0] == 400  # no client certificate
    finally:
        server.stop()
    assert "certificate revoked" in server.error_log.read_text()
