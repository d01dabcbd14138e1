"""/docs works without internet access: Swagger UI comes from the pinned package, under a
Content-Security-Policy; headless Chromium (Debian's package), with every host name but
127.0.0.1 unresolvable, renders every operation of /openapi.json."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from ca_service import create_app
from tests.helpers import LiveServer, have

BUNDLED_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def test_docs_page_and_its_files_come_from_the_service(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.headers["Content-Security-Policy"] == BUNDLED_POLICY
    html = page.get_data(as_text=True)
    assert '<script src="/docs/swagger-ui/swagger-ui-bundle.js">' in html and "https://" not in html
    bundle = client.get("/docs/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and b"SwaggerUIBundle" in bundle.data
    assert client.get("/docs/start.js").mimetype == "text/javascript"
    assert client.get("/docs/swagger-ui/../../__init__.py").status_code == 404


def test_a_configured_cdn_is_allowed_by_the_policy(make_settings) -> None:
    app = create_app(make_settings(swagger_ui_url="https://cdn.example.net/swagger-ui-dist@5.34.0/"))
    page = app.test_client().get("/docs")
    assert "https://cdn.example.net/swagger-ui-dist@5.34.0/swagger-ui-bundle.js" in page.get_data(
        as_text=True
    )
    assert "script-src 'self' https://cdn.example.net;" in page.headers["Content-Security-Policy"]


def rendered(url: str, tmp: Path) -> tuple[str, str]:
    """The DOM of ``url`` after Chromium ran its scripts, and Chromium's log (console messages
    included). Every host name but 127.0.0.1 fails to resolve: no CDN, no network."""
    if not have("chromium"):
        pytest.fail("chromium is needed; scripts/system-deps.sh installs it")
    result = subprocess.run(
        [
            *("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"),
            *("--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp}"),
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            *("--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom", url),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, result.stderr


def operations(dom: str) -> set[str]:
    """Swagger UI's operation blocks (id="operations-<tag>-<operationId>"), without tag headers."""
    return {m for m in re.findall(r'id="operations-([^"]+)"', dom) if not m.startswith("tag-")}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_chromium_renders_every_operation_offline(services, env_for: dict[str, str], tmp_path: Path) -> None:
    """Bundled: every operation of the document is in the DOM, and the policy refused nothing.
    With the CDN configured instead, the same offline browser renders none: the check sees a
    blank page for what it is."""
    server = LiveServer(env_for, workers=1).start()
    try:
        spec = requests.get(f"{server.url}/openapi.json", timeout=10).json()
        methods = {"get", "put", "post", "delete", "patch", "head", "options"}
        expected = sum(1 for item in spec["paths"].values() for method in item if method in methods)
        dom, log = rendered(f"{server.url}/docs", tmp_path / "chromium")
    finally:
        server.stop()
    assert len(operations(dom)) == expected > 30, dom[-2000:]
    assert "certificates-issueCertificate" in operations(dom)  # tag-operationId
    assert "Content Security Policy" not in log, log[-3000:]

    cdn = {**env_for, "CA_SERVICE_SWAGGER_UI_URL": "https://cdn.example.net/swagger-ui-dist@5.34.0/"}
    server = LiveServer(cdn, workers=1).start()
    try:
        dom, _ = rendered(f"{server.url}/docs", tmp_path / "chromium-cdn")
    finally:
        server.stop()
    assert operations(dom) == set() and 'id="swagger-ui"' in dom
