"""Trust anchors, the public trust bundle, device certificate inspection, firmware compatibility."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ca_service.api.auth import ANY_ROLE, SECURITY, principal, require, services
from ca_service.api.problems import accepts
from ca_service.api.schemas import (
    AnchorImportSchema,
    AnchorListQuerySchema,
    AnchorQuerySchema,
    AnchorSchema,
    BundleQuerySchema,
    CompatibilityQuerySchema,
    CompatibilitySchema,
    InspectionSchema,
    InspectSchema,
    ProblemSchema,
)
from ca_service.domain import Role
from ca_service.errors import CAError, Kind

blp = Blueprint(
    "trust", __name__, url_prefix="/api/v1", description="Trust anchors, inspection, compatibility"
)
public = Blueprint("trust-bundle", __name__, url_prefix="/trust", description="Trust bundle (public)")

PEM = "application/x-pem-file"
# raw certificate uploads (anchor import, inspection) besides JSON; see problems.accepts
BODY_TYPES = (
    "application/json",
    PEM,
    "application/pem-certificate-chain",
    "application/pkix-cert",
    "application/x-x509-ca-cert",
    "application/octet-stream",
)
BUNDLE_CACHE = "public, max-age=300"
PROBLEM = {"schema": ProblemSchema, "content_type": "application/problem+json"}


def _upload(field: str | None) -> bytes:
    """The certificate upload: the JSON member, or the raw body when it is not JSON."""
    if request.is_json:
        if not field:
            raise CAError(Kind.MALFORMED, "Send the certificate as the JSON member 'pem' or as the raw body.")
        return field.encode()
    data = request.get_data()  # bounded by max_body_bytes (413 beyond)
    if not data:
        raise CAError(Kind.MALFORMED, "The request has no certificate; send PEM or DER as the body.")
    return data


@blp.route("/trust/anchors")
@accepts(*BODY_TYPES)
class Anchors(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(AnchorListQuerySchema, location="query")
    @blp.response(200, AnchorSchema(many=True))
    @require(*ANY_ROLE)
    def get(self, query: dict[str, Any]) -> Any:
        """Imported trust anchors (active; with ``include_retired`` the history too)."""
        return services().bundle.anchors(query["include_retired"])

    @blp.doc(security=SECURITY)
    @blp.arguments(AnchorQuerySchema, location="query")
    @blp.arguments(AnchorImportSchema, location="json", required=False)
    @blp.response(201, AnchorSchema)
    @blp.alt_response(400, description="Unreadable certificate or unknown purpose", **PROBLEM)
    @blp.alt_response(409, description="Already an active anchor", **PROBLEM)
    @blp.alt_response(413, description="Body larger than max_body_bytes", **PROBLEM)
    @blp.alt_response(422, description="Not a CA, expired, or a weak intermediate", **PROBLEM)
    @require(Role.ADMIN)
    def post(self, query: dict[str, Any], body: dict[str, Any]) -> Any:
        """Import a CA certificate as a trust anchor (admin).

        JSON ``{"pem": ..., "purpose": ..., "label": ...}``, or the PEM/DER file as the raw body
        with ``?purpose=&label=``. It must be a CA certificate within its validity period; weak keys
        and SHA-1 signatures are warnings on a root and refusals on an intermediate.
        """
        purpose = body.get("purpose") or query.get("purpose")
        label = body.get("label") or query.get("label")
        if not purpose or not label:
            raise CAError(
                Kind.MALFORMED,
                "An anchor needs a purpose (gigaset-factory, gigaset-technologies or other) and a label.",
            )
        anchor = services().bundle.add(_upload(body.get("pem")), purpose, label, principal())
        return anchor, 201, {"Location": f"/api/v1/trust/anchors/{anchor['id']}"}


@blp.route("/trust/anchors/<int:anchor_id>")
class Anchor(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, AnchorSchema)
    @blp.alt_response(404, description="Unknown anchor", **PROBLEM)
    @require(*ANY_ROLE)
    def get(self, anchor_id: int) -> Any:
        """One trust anchor, active or retired."""
        return services().bundle.anchor(anchor_id)

    @blp.doc(security=SECURITY)
    @blp.response(200, AnchorSchema)
    @blp.alt_response(409, description="Retired already", **PROBLEM)
    @require(Role.ADMIN)
    def delete(self, anchor_id: int) -> Any:
        """Retire a trust anchor (admin): it leaves the bundle, its record stays."""
        return services().bundle.retire(anchor_id, principal())


@blp.route("/inspect", methods=["POST"])
@accepts(*BODY_TYPES)
@blp.doc(security=SECURITY)
@blp.arguments(InspectSchema, location="json", required=False)
@blp.response(200, InspectionSchema)
@blp.alt_response(400, description="No certificate could be read", **PROBLEM)
@require(*ANY_ROLE)
def inspect(body: dict[str, Any]) -> Any:
    """Say what a device certificate is: MAC, generation, key, signature, validity, whether it
    chains to the trust bundle, for ours its revocation state, and what to do next."""
    return services().bundle.inspect(_upload(body.get("pem")))


@blp.route("/compatibility")
@blp.doc(security=SECURITY)
@blp.arguments(CompatibilityQuerySchema, location="query")
@blp.response(200, CompatibilitySchema)
@blp.alt_response(400, description="Not a software version", **PROBLEM)
@require(*ANY_ROLE)
def compatibility(query: dict[str, Any]) -> Any:
    """Which certificate each service uses on this device software (Gigaset FAQ table) and
    which anchors a provisioning server must trust."""
    return services().bundle.compatibility(query["firmware"])


def _served(as_json: bool, query: dict[str, Any], mimetype: str) -> Response:
    """The stored rendering with its strong ETag; 304 when If-None-Match matches (RFC 9110
    section 13.1.2, weak comparison): nothing is rendered per request."""
    rendered = services().bundle.served(
        as_json, query["purpose"], query["firmware"], query["anchors"] == "roots"
    )
    matched = request.if_none_match.contains_weak(rendered.etag)
    response = Response(status=304) if matched else Response(rendered.body, mimetype=mimetype)
    response.set_etag(rendered.etag)
    response.headers["Cache-Control"] = BUNDLE_CACHE
    return response


# one schema instance: webargs would make one per request from the class (a third of the request)
BUNDLE_QUERY = BundleQuerySchema()


@public.route("/bundle.pem")
@public.arguments(BUNDLE_QUERY, location="query")
@public.response(200, content_type=PEM)
def bundle_pem(query: dict[str, Any]) -> Response:
    """The trust bundle for provisioning servers: every active anchor and our CAs, each under a
    comment naming label, purpose, SHA-256 fingerprint and expiry. Filters: ``purpose``,
    ``firmware``; ``anchors=roots`` lists only root CAs (our issuing CA is then an intermediate
    whose revocation clients check)."""
    return _served(False, query, PEM)


@public.route("/bundle.json")
@public.arguments(BUNDLE_QUERY, location="query")
@public.response(200)
def bundle_json(query: dict[str, Any]) -> Response:
    """The same bundle with metadata, a version that grows on every change, and the anchors that
    expire within 90 days flagged."""
    return _served(True, query, "application/json")
