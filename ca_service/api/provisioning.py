"""Public one-time downloads for devices: /provisioning/cert/<token> and /provisioning/key/<token>.

No bearer token: the 256-bit token in the URL is the credential. Answers are never cached. Only
GET fetches (RFC 9110 section 9.3.1): HEAD, OPTIONS and every other method answer 405 with
``Allow: GET`` before anything is looked up, so a link checker or proxy that sends HEAD never
consumes a key. Paths under /provisioning/ are never redirected (a merged double slash would
put the token into a Location header and the access log).
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import MethodNotAllowed

from ca_service.api import examples
from ca_service.api.auth import services
from ca_service.api.openapi import TEXT, Blueprint, problem_docs

blp = Blueprint(
    "provisioning",
    __name__,
    url_prefix="/provisioning",
    description="One-time downloads for devices (public)",
)

PEM = "application/x-pem-file"
# no key material, not even a made-up one, in the document (tests look for PEM key labels)
KEY_PEM = "-----BEGIN ...-----\n(the device's key: PKCS#8 or traditional, per profile)\n-----END ...-----\n"
DOWNLOAD_PROBLEMS = (
    (403, "The User-Agent names another MAC (downloads bound to the device)"),
    (404, "Unknown URL"),
    (405, "Not GET (HEAD too: it would not consume the key, so it is refused)"),
)
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
@blp.doc(operationId="downloadDeviceCertificate")
@blp.response(
    200,
    TEXT,
    content_type=PEM,
    description="The certificate (leaf, or leaf + chain per profile)",
    example=examples.CERT_PEM,
)
@problem_docs(*DOWNLOAD_PROBLEMS, (410, "Expired"))
def certificate(token: str) -> Response:
    """A device's certificate, by its one-time delivery URL.

    May be fetched again until the URL expires; the token in the URL is the credential.
    """
    return _download("cert", token)


@blp.route("/key/<string:token>", merge_slashes=False)
@blp.doc(operationId="downloadDeviceKey")
@blp.response(
    200,
    TEXT,
    content_type=PEM,
    description="The private key, unencrypted PEM (PKCS#8 or traditional per profile)",
    example=KEY_PEM,
)
@problem_docs(*DOWNLOAD_PROBLEMS, (410, "Expired or already downloaded"))
def key(token: str) -> Response:
    """A device's private key, by its one-time delivery URL.

    Works exactly once; afterwards the key is gone from the service.
    """
    return _download("key", token)
