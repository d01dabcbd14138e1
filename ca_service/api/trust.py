"""Trust anchors, the public trust bundle, device certificate inspection, firmware compatibility."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from ca_service.api import examples
from ca_service.api.auth import ANY_ROLE, principal, require, services
from ca_service.api.openapi import TEXT, Blueprint, problem_docs, upload
from ca_service.api.problems import ROW_ID, accepts
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
# the raw bodies besides JSON, as documented (a DER file as binary, PEM as text)
RAW_UPLOAD = upload(*BODY_TYPES[1:], description="The certificate file itself: PEM or DER.")
BUNDLE_JSON = {
    "version": 7,
    "filter": {"purposes": ["gigaset-factory", "private"], "firmware": None},
    "count": 1,
    "expiring_within_90_days": 0,
    "certificates": [
        {
            **{k: v for k, v in examples.ANCHOR.items() if k in ("id", "label", "purpose", "subject", "pem")},
            "fingerprint_sha256": examples.ANCHOR["fingerprint_sha256"],
            "not_before": examples.ANCHOR["not_before"],
            "not_after": examples.ANCHOR["not_after"],
            "expired": False,
            "expires_within_90_days": False,
            "warnings": [],
        }
    ],
}


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
    @blp.doc(operationId="listTrustAnchors")
    @blp.arguments(AnchorListQuerySchema, location="query")
    @blp.response(200, AnchorSchema(many=True), example=[examples.ANCHOR])
    @require(*ANY_ROLE)
    def get(self, query: dict[str, Any]) -> Any:
        """List the imported trust anchors.

        The active ones, oldest first; with ``include_retired`` the retired ones too.
        """
        return services().bundle.anchors(query["include_retired"])

    @blp.doc(operationId="importTrustAnchor", requestBody=RAW_UPLOAD)
    @blp.arguments(AnchorQuerySchema, location="query")
    @blp.arguments(
        AnchorImportSchema,
        location="json",
        required=False,
        example={"pem": examples.CERT_PEM, "purpose": "gigaset-factory", "label": "Gigaset factory CA 2"},
    )
    @blp.response(201, AnchorSchema, example=examples.ANCHOR)
    @problem_docs(
        (400, "No purpose or label, unknown purpose, or no certificate could be read"),
        (409, "Already an active anchor"),
        (422, "Not a CA, expired, or a weak intermediate"),
    )
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


@blp.route(f"/trust/anchors/<{ROW_ID}:anchor_id>")
class Anchor(MethodView):
    @blp.doc(operationId="getTrustAnchor")
    @blp.response(200, AnchorSchema, example=examples.ANCHOR)
    @problem_docs((404, "Unknown anchor"))
    @require(*ANY_ROLE)
    def get(self, anchor_id: int) -> Any:
        """One trust anchor, active or retired.

        With its PEM, warnings (weak key, SHA-1, near expiry) and who imported or retired it.
        """
        return services().bundle.anchor(anchor_id)

    @blp.doc(operationId="retireTrustAnchor")
    @blp.response(
        200, AnchorSchema, example={**examples.ANCHOR, "retired_by": "admin:ops", "retired_at": examples.AT}
    )
    @problem_docs((404, "Unknown anchor"), (409, "Retired already"))
    @require(Role.ADMIN)
    def delete(self, anchor_id: int) -> Any:
        """Retire a trust anchor (admin).

        It leaves the trust bundle from the next bundle version on; its record stays.
        """
        return services().bundle.retire(anchor_id, principal())


@blp.route("/inspect", methods=["POST"])
@accepts(*BODY_TYPES)
@blp.doc(operationId="inspectCertificate", requestBody=RAW_UPLOAD)
@blp.arguments(InspectSchema, location="json", required=False, example={"pem": examples.CERT_PEM})
@blp.response(200, InspectionSchema, example=examples.INSPECTION)
@problem_docs((400, "No certificate could be read"))
@require(*ANY_ROLE)
def inspect(body: dict[str, Any]) -> Any:
    """Say what a device certificate is and what to do next.

    MAC, generation, key, signature, validity, whether it chains to the trust bundle, for ours
    its revocation state, and advice.
    """
    return services().bundle.inspect(_upload(body.get("pem")), principal())


@blp.route("/compatibility")
@blp.doc(operationId="getCompatibility")
@blp.arguments(CompatibilityQuerySchema, location="query")
@blp.response(200, CompatibilitySchema, example=examples.COMPATIBILITY)
@problem_docs((400, "Not a software version"))
@require(*ANY_ROLE)
def compatibility(query: dict[str, Any]) -> Any:
    """Which certificates a device software uses, and which anchors to trust.

    Which certificate each service uses on this device software (Gigaset FAQ table) and which
    anchors a provisioning server must trust.
    """
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
@public.doc(operationId="getTrustBundlePem")
@public.arguments(BUNDLE_QUERY, location="query")
@public.response(200, TEXT, content_type=PEM, example=examples.CERT_PEM)
@public.alt_response(304, description="Not modified (If-None-Match)", success=True)
@problem_docs((400, "Unknown purpose or not a software version"))
def bundle_pem(query: dict[str, Any]) -> Response:
    """The trust bundle for provisioning servers, PEM.

    Every active anchor and our CAs, each under a comment naming label, purpose, SHA-256
    fingerprint and expiry. Filters: ``purpose``, ``firmware``; ``anchors=roots`` lists only
    root CAs (our issuing CA is then an intermediate whose revocation clients check). Rendered
    once per bundle version and form: a 200 or 304 renders nothing.
    """
    return _served(False, query, PEM)


@public.route("/bundle.json")
@public.doc(operationId="getTrustBundleJson")
@public.arguments(BUNDLE_QUERY, location="query")
@public.response(200, {"type": "object"}, example=BUNDLE_JSON)
@public.alt_response(304, description="Not modified (If-None-Match)", success=True)
@problem_docs((400, "Unknown purpose or not a software version"))
def bundle_json(query: dict[str, Any]) -> Response:
    """The trust bundle with metadata, JSON.

    The same bundle with metadata, a version that grows on every change, and the anchors that
    expire within 90 days flagged.
    """
    return _served(True, query, "application/json")
