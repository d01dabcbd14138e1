"""deploy/nginx-reverse-proxy.conf as shipped, in Debian's nginx in front of gunicorn: TLS with a
test certificate for REST and ACME (the directory keeps the public host and port), imports up to
8 MiB, CRL, OCSP (POST and GET) and CA certificates on plain HTTP without a redirect, the
documentation and metrics kept internal, download tokens kept out of the access log."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.helpers import REPO, LiveServer, free_port, make_csr, openssl, self_signed
from tests.nginx import start_nginx, stop

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

SITE = REPO / "deploy" / "nginx-reverse-proxy.conf"


@dataclass
class Proxy:
    http: str  # http://127.0.0.1:<port standing in for 80>
    https: str  # https://127.0.0.1:<port standing in for 443>
    server_ca: Path  # what a client trusts for the test certificate
    logs: Path  # nginx's access and error logs: *.log

    def session(self) -> requests.Session:
        """A client that trusts the test certificate (and not the environment's CA bundle)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.server_ca)
        return session


def site_for_test(tmp: Path, http_port: int, https_port: int, upstream: int) -> str:
    """The shipped file with the test's ports, certificate, upstream and log folder; each
    replaced text must be there exactly as often as expected, so the file cannot drift away."""
    text = SITE.read_text()
    for old, new, count in (
        ("listen 80;", f"listen 127.0.0.1:{http_port};", 1),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", 1),
        ("listen [::]:80;\n", "", 1),
        ("listen [::]:443 ssl http2;\n", "", 1),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};", 1),
        ("/etc/ssl/ca.example.net/", f"{tmp}/", 2),
        ("/var/log/nginx/", f"{tmp}/", 2),
    ):
        assert text.count(old) == count, old
        text = text.replace(old, new)
    return text


@pytest.fixture
def proxy(services, env_for: dict[str, str], tmp_path: Path) -> Iterator[Proxy]:
    tmp = tmp_path / "nginx"
    tmp.mkdir()
    self_signed(tmp / "key.pem", tmp / "fullchain.pem", "/CN=ca.test", ext=("subjectAltName=IP:127.0.0.1",))
    services.revocation.publish_due()  # the first CRL, as `ca-service init` publishes it
    http_port, https_port = free_port(), free_port()
    # the service's public URL is the proxy's (ACME URLs come from it, never from the Host header)
    server = LiveServer(env_for, workers=1, public_url=f"https://127.0.0.1:{https_port}").start()
    proc, _ = start_nginx(tmp, site_for_test(tmp, http_port, https_port, server.port), https_port)
    try:
        yield Proxy(
            f"http://127.0.0.1:{http_port}",
            f"https://127.0.0.1:{https_port}",
            tmp / "fullchain.pem",
            tmp,
        )
    finally:
        stop(proc)
        server.stop()


def test_tls_rest_acme_and_imports(proxy: Proxy, admin: dict[str, str], tmp_path: Path) -> None:
    with proxy.session() as https:
        _, csr = make_csr(tmp_path, "7C2F80A1B2C3")
        issued = https.post(
            f"{proxy.https}/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin
        )
        assert issued.status_code == 201, issued.text
        directory = https.get(f"{proxy.https}/acme/directory").json()
        assert directory["newNonce"] == f"{proxy.https}/acme/new-nonce"  # public scheme, host and port
        assert https.head(directory["newNonce"]).headers["Replay-Nonce"]
        # 8 MiB reach the service, which reads the CSV (no 'mac' column: a 400 problem)
        headers = {**admin, "Content-Type": "text/csv"}
        body = b"serial\n" + b"0" * (8 * 1024 * 1024 - 100) + b"\n"
        imported = https.post(f"{proxy.https}/api/v1/device-imports", data=body, headers=headers)
        assert imported.status_code == 400 and "mac" in imported.json()["detail"], imported.text
        # above the service's caps nginx refuses, with a problem document as the service would
        too_big = https.post(
            f"{proxy.https}/api/v1/device-imports", data=body + b"0" * 200_000, headers=headers
        )
        json_headers = {**admin, "Content-Type": "application/json"}
        other = https.post(f"{proxy.https}/api/v1/certificates", data=b"{" * 100_000, headers=json_headers)
        for answer in (too_big, other):
            assert answer.status_code == 413, answer.text
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert answer.json()["status"] == 413


def test_revocation_data_on_plain_http(proxy: Proxy, admin: dict[str, str], tmp_path: Path) -> None:
    """What relying parties fetch by our certificates' URLs answers on plain HTTP; the rest is
    redirected to HTTPS."""
    with proxy.session() as http:
        for name in ("root", "issuing"):
            (tmp_path / f"{name}.pem").write_bytes(http.get(f"{proxy.http}/ca/{name}.pem").content)
        _, csr = make_csr(tmp_path, "7C2F80A1B2C4")
        issued = http.post(f"{proxy.https}/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
        leaf = tmp_path / "leaf.pem"
        leaf.write_text(issued.json()["certificate_pem"])
        issuer = http.get(f"{proxy.https}/api/v1/issuers", headers=admin).json()
        name = next(i["name"] for i in issuer if i["role"] == "issuing" and i["state"] == "active")
        crl = http.get(f"{proxy.http}/crl/{name}.crl", allow_redirects=False)
        assert crl.status_code == 200 and crl.headers["Content-Type"] == "application/pkix-crl"
        assert http.get(f"{proxy.http}/trust/bundle.pem", allow_redirects=False).status_code == 200
        redirected = http.get(f"{proxy.http}/api/v1/profiles", allow_redirects=False)
        assert redirected.status_code == 301
        assert redirected.headers["Location"] == "https://127.0.0.1/api/v1/profiles"
        request = tmp_path / "ocsp-request.der"
        ask = ("ocsp", "-issuer", str(tmp_path / "issuing.pem"), "-cert", str(leaf))
        openssl(*ask, "-no_nonce", "-reqout", str(request))
        encoded = quote(base64.b64encode(request.read_bytes()).decode(), safe="")
        got = http.get(f"{proxy.http}/ocsp/{encoded}", allow_redirects=False)
        assert got.status_code == 200 and got.headers["Content-Type"] == "application/ocsp-response"
    posted = openssl(
        *ask, "-url", f"{proxy.http}/ocsp", "-CAfile", str(tmp_path / "root.pem"),
        "-verify_other", str(tmp_path / "issuing.pem"),
    )  # fmt: skip
    assert f"{leaf}: good".encode() in posted.stdout, posted


def test_internal_paths_and_download_tokens(proxy: Proxy) -> None:
    """Documentation, the OpenAPI document and metrics are refused from outside, however the
    path is spelled; download tokens reach the service but not nginx's logs. curl sends each
    path as written (percent-encoding included), as an attacker's client would."""

    def status(path: str) -> int:
        result = subprocess.run(
            [
                *("curl", "-sS", "--path-as-is", "--cacert", str(proxy.server_ca), "-o", "/dev/null"),
                *("-w", "%{http_code}", f"{proxy.https}{path}"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    internal = ["/docs", "/docs/swagger-ui/swagger-ui-bundle.js", "/openapi.json", "/metrics", "/%64ocs"]
    assert {path: status(path) for path in [*internal, "//metrics"]} == dict.fromkeys(
        [*internal, "//metrics"], 403
    )
    assert status("/healthz") == 200
    tokens = ["CERTTOKEN0123456789", "KEYTOKEN0123456789", "ENCODEDTOKEN0123456789"]
    downloads = [
        f"/provisioning/cert/{tokens[0]}",
        f"/provisioning/key/{tokens[1]}",
        f"/provisioning/%6Bey/{tokens[2]}",
    ]
    assert [status(path) for path in downloads] == [404, 404, 404]  # they reached the service
    logs = "".join(log.read_text() for log in proxy.logs.glob("*.log"))
    assert not any(token in logs for token in tokens), logs
    access_log = (proxy.logs / "ca-service.access.log").read_text()
    assert re.findall(r'"GET (/provisioning/\S+) ', access_log) == [
        "/provisioning/cert/(redacted)",
        "/provisioning/key/(redacted)",
        "/provisioning/key/(redacted)",
    ]
