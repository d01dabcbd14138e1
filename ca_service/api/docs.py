"""/docs: Swagger UI over /openapi.json, served by the service itself.

Swagger UI's files come from the pinned flask-swagger-ui package (its dist/ folder; the package
follows Swagger UI's releases), so the page works on a network without internet access. With
``swagger_ui_url`` set, the page loads them from there instead (a CDN or a mirror). Admins paste
bearer tokens into this page: a Content-Security-Policy lets it run only the Swagger UI files and
its own start script, talk only to this origin, and be framed by nobody; Swagger UI's online
validator is off, and authorisations are not kept in the browser's storage.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import urlsplit

import flask_swagger_ui
from flask import Blueprint, Response, send_from_directory

from ca_service.api.auth import services

SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
BUNDLED = "/docs/swagger-ui/"
ASSET_MAX_AGE = 86400

bp = Blueprint("docs", __name__)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ca-service API</title>
<link rel="stylesheet" href="{base}swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="/openapi.json"></div>
<script src="{base}swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""

START = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: false
  });
});
"""


def content_security_policy(base: str) -> str:
    """The page's policy: scripts, styles and images from this origin and ``base``'s (a CDN's
    when configured), data: images (Swagger UI's icons), requests only to this origin."""
    parts = urlsplit(base)
    sources = f"'self' {parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"
    return (
        f"default-src 'none'; script-src {sources}; style-src {sources}; img-src {sources} data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


@bp.route("/docs")
def page() -> Response:
    base = services().settings.swagger_ui_url or BUNDLED
    response = Response(PAGE.format(base=escape(base)), mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy(base)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/docs/start.js")
def start() -> Response:
    response = Response(START, mimetype="text/javascript")
    response.cache_control.max_age = ASSET_MAX_AGE
    return response


@bp.route(f"{BUNDLED}<path:filename>")
def asset(filename: str) -> Response:
    """A file of the pinned Swagger UI (send_from_directory refuses paths outside dist/)."""
    return send_from_directory(SWAGGER_UI_DIST, filename, max_age=ASSET_MAX_AGE)
