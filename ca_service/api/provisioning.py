"""Public one-time downloads for devices: /provisioning/cert/<token> and /provisioning/key/<token>.

No bearer token: the 256-bit token in the URL is the credential. Answers are never cached. Only
GET fetches (RFC 9110 section 9.3.1): HEAD, OPTIONS and every other method answer 405 with
``Allow: GET`` before anything is looked up, so a link checker or proxy that sends HEAD never
consumes a key. Paths under /provisioning/ are never redirected (a merged double slash would
put the token into a Location header and the access log).
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_smorest import Blueprint
from werkzeug.exceptions import MethodNotAllowed

from ca_service.api.auth import services
from ca_service.api.schemas import ProblemSchema

blp = Blueprint(
    "provisioning",
    __name__,
    url_prefix="/provisioning",
    description="One-time downloads for devices (public)",
)

PEM = "application/x-pem-file"
PROBLEM = "application/problem+json"
PREFIX = "/provisioning/"


def install(app: Flask) -> None:
    """Refuse every method but GET under /provisioning/ before routing is even consulted."""

    @app.before_request
    def _get_only() -> None:
        if request.path.startswith(PREFIX) and request.method != "GET":
            raise MethodNotAllowed(valid_methods=["GET"])


def _download(kind: str, token: str) -> Response:
    found = services().credentials.download(kind, token[:128], request.headers.get("User-Agent"))
    response = Response(found.body, mimetype=PEM)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = f'attachment; filename="{found.filename}"'
    return response


@blp.route("/cert/<string:token>", merge_slashes=False)
@blp.response(200, content_type=PEM, description="The certificate (leaf, or leaf + chain per profile)")
@blp.alt_response(404, schema=ProblemSchema, description="Unknown URL", content_type=PROBLEM)
@blp.alt_response(410, schema=ProblemSchema, description="Expired", content_type=PROBLEM)
@blp.alt_response(403, schema=ProblemSchema, description="User-Agent names another MAC", content_type=PROBLEM)
@blp.alt_response(405, schema=ProblemSchema, description="Not GET (HEAD too)", content_type=PROBLEM)
def certificate(token: str) -> Response:
    """The device certificate; may be fetched again until the URL expires."""
    return _download("cert", token)


@blp.route("/key/<string:token>", merge_slashes=False)
@blp.response(200, content_type=PEM, description="The private key, unencrypted PEM (PKCS#8 or traditional)")
@blp.alt_response(404, schema=ProblemSchema, description="Unknown URL", content_type=PROBLEM)
@blp.alt_response(
    410, schema=ProblemSchema, description="Expired or already downloaded", content_type=PROBLEM
)
@blp.alt_response(403, schema=ProblemSchema, description="User-Agent names another MAC", content_type=PROBLEM)
@blp.alt_response(405, schema=ProblemSchema, description="Not GET (HEAD too)", content_type=PROBLEM)
def key(token: str) -> Response:
    """The device private key: works exactly once; afterwards the key is gone from the service."""
    return _download("key", token)
