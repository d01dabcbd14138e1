"""Marshmallow schemas of the REST API (documented in the OpenAPI document)."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate


class SubproblemSchema(Schema):
    type = fields.String(required=True)
    detail = fields.String(required=True)
    identifier = fields.Dict(allow_none=True)


class ProblemSchema(Schema):
    """An RFC 9457 problem document; members beyond these may follow (RFC 9457 section 3.2)."""

    class Meta:
        unknown = INCLUDE  # documented as additionalProperties: true

    type = fields.String(
        required=True,
        metadata={
            "description": "urn:ca-service:problem:<kind> for the service's own problems, "
            "about:blank for plain HTTP ones (405, 413, 415, 422)."
        },
    )
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True, metadata={"description": "What went wrong, in one sentence."})
    instance = fields.String(required=True, metadata={"description": "The request path."})
    request_id = fields.String(
        required=True, metadata={"description": "Also in X-Request-Id and every log line of the request."}
    )
    errors = fields.Dict(metadata={"description": "422: the messages of each field that failed validation."})
    limit_bytes = fields.Integer(metadata={"description": "413: the body limit of this operation."})
    allowed_methods = fields.List(
        fields.String(), metadata={"description": "405: what the resource answers."}
    )
    retry_after = fields.Integer(metadata={"description": "429: seconds until the limit admits again."})
    subproblems = fields.List(fields.Nested(SubproblemSchema))


class IssueRequestSchema(Schema):
    csr = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32768),
        metadata={
            "description": "PKCS#10 CSR in PEM; its CN and/or SAN dNSNames name the device MAC "
            "(any common spelling), all the same MAC."
        },
    )
    profile = fields.String(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "Certificate profile; default 'device'."},
    )
    replaces = fields.String(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "Serial of the certificate this one renews (same MAC, not yet replaced)."},
    )


class CertificateSchema(Schema):
    serial = fields.String(metadata={"description": "Hex, as 'openssl x509 -serial' prints it."})
    mac = fields.String(metadata={"example": "7C2F80C6E5C2"})
    profile = fields.String()
    issuer = fields.String()
    status = fields.Function(lambda c: c.status.value)
    not_before = fields.DateTime()
    not_after = fields.DateTime()
    key_type = fields.String(metadata={"example": "ec-p256"})
    fingerprint_sha256 = fields.String()
    revoked_at = fields.DateTime(allow_none=True)
    revocation_reason = fields.String(allow_none=True)
    replaces = fields.String(allow_none=True)
    replaced_by = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()
    certificate_pem = fields.String()
    chain_pem = fields.String(metadata={"description": "Issuing CA chain, without the root."})


class CertificateQuerySchema(Schema):
    mac = fields.String(load_default=None, validate=validate.Length(max=32))
    status = fields.String(load_default=None, validate=validate.OneOf(["valid", "revoked"]))
    expires_before = fields.AwareDateTime(load_default=None, default_timezone=None)


class DeviceSummarySchema(Schema):
    mac = fields.String()
    model = fields.String(allow_none=True)
    firmware = fields.String(allow_none=True)
    labels = fields.Dict()
    created_at = fields.DateTime()


class DeviceSchema(DeviceSummarySchema):
    certificates = fields.List(
        fields.Nested(CertificateSchema),
        metadata={"description": "A page of the device's certificates, newest first (page, page_size)."},
    )
    certificates_total = fields.Integer(metadata={"description": "How many certificates the device has."})


class DeviceQuerySchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class ProfileSchema(Schema):
    name = fields.String()
    description = fields.String()
    validity_days = fields.Integer()
    client_auth = fields.Boolean()
    server_auth = fields.Boolean()
    san_permanent_identifier = fields.Boolean()
    san_dns_name = fields.Boolean()
    key_format = fields.String(metadata={"description": "pkcs8 or traditional (keys made for devices)."})
    cert_chain = fields.Boolean(metadata={"description": "Certificate downloads carry the chain."})


class DeviceRegisterSchema(Schema):
    mac = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "The device MAC in any common spelling.", "example": "7c:2f:80:c6:e5:c2"},
    )
    model = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    firmware = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    labels = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=fields.String(validate=validate.Length(max=256)),
        load_default=dict,
        metadata={"description": "Free labels (name -> text), at most 32."},
    )


class DeviceChangeSchema(Schema):
    model = fields.String(allow_none=True, validate=validate.Length(max=64))
    firmware = fields.String(allow_none=True, validate=validate.Length(max=64))
    labels = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=fields.String(allow_none=True, validate=validate.Length(max=256)),
        metadata={"description": "Labels to set; a null value removes that label."},
    )


class CredentialRequestSchema(Schema):
    profile = fields.String(load_default=None, validate=validate.Length(max=64))
    key_type = fields.String(
        load_default="ec-p256",
        validate=validate.OneOf(["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]),
        metadata={"description": "Key made for the device; ECDSA P-256 by default."},
    )
    bind_user_agent = fields.Boolean(
        load_default=None,
        allow_none=True,
        metadata={"description": "Downloads must come from a User-Agent naming this MAC (default: setting)."},
    )


class ProvisioningRequestSchema(Schema):
    profile = fields.String(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "Profile of a new certificate (default: the previous one's)."},
    )
    key_type = fields.String(
        load_default=None,
        validate=validate.OneOf(["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]),
        metadata={"description": "Key type of a new key (default: the previous key's, else ec-p256)."},
    )
    fresh_urls = fields.Boolean(
        load_default=False,
        metadata={
            "description": "For a delivery still waiting: new URLs, the unused old ones expire "
            "(e.g. after they leaked). Default: the waiting delivery's URLs as they are."
        },
    )


class DeliverySchema(Schema):
    certificate_url = fields.String(metadata={"description": "Fetchable again until expires_at."})
    key_url = fields.String(metadata={"description": "Works exactly once, until expires_at."})
    expires_at = fields.DateTime()
    bound_to_user_agent = fields.Boolean()
    certificate = fields.Nested(CertificateSchema)


class RejectedRowSchema(Schema):
    line = fields.Integer()
    mac = fields.String()
    reason = fields.String()


class ImportReportSchema(Schema):
    rows = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    rejected = fields.List(fields.Nested(RejectedRowSchema))


# -- trust bundle, inspection, firmware compatibility (issue 6) --------------------------------
PURPOSE_HELP = "gigaset-factory, gigaset-technologies or other"


class AnchorImportSchema(Schema):
    pem = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=60000),
        metadata={"description": "The CA certificate in PEM. Or send the PEM/DER file as the raw body."},
    )
    purpose = fields.String(
        load_default=None, validate=validate.Length(max=40), metadata={"description": PURPOSE_HELP}
    )
    label = fields.String(load_default=None, validate=validate.Length(max=128))


class AnchorQuerySchema(Schema):
    purpose = fields.String(
        load_default=None,
        validate=validate.Length(max=40),
        metadata={"description": "With a raw body: " + PURPOSE_HELP},
    )
    label = fields.String(
        load_default=None, validate=validate.Length(max=128), metadata={"description": "With a raw body."}
    )


class AnchorListQuerySchema(Schema):
    include_retired = fields.Boolean(load_default=False)


class AnchorSchema(Schema):
    id = fields.Integer()
    label = fields.String()
    purpose = fields.String()
    subject = fields.String()
    fingerprint_sha256 = fields.String()
    not_before = fields.DateTime()
    not_after = fields.DateTime()
    expires_within_90_days = fields.Boolean()
    warnings = fields.List(fields.String())
    created_by = fields.String()
    created_at = fields.DateTime()
    retired_by = fields.String(allow_none=True)
    retired_at = fields.DateTime(allow_none=True)
    pem = fields.String()


class BundleQuerySchema(Schema):
    purpose = fields.String(
        load_default=None,
        validate=validate.Length(max=200),
        metadata={"description": "Comma-separated purposes, e.g. gigaset-factory,private."},
    )
    firmware = fields.String(
        load_default=None,
        validate=validate.Length(max=100),
        metadata={"description": "Only what devices on this software need: 2.59, 2.59.1 or 83.V2.59.1."},
    )
    anchors = fields.String(
        load_default="all",
        validate=validate.OneOf(["all", "roots"]),
        metadata={
            "description": "all: every anchor and our CAs (our issuing CA is trusted as an anchor, so "
            "clients never check its revocation); roots: only root CAs (issuing CAs are intermediates "
            "whose revocation clients check)."
        },
    )


class InspectSchema(Schema):
    pem = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=60000),
        metadata={
            "description": "Device certificate in PEM, optionally followed by its chain. Or send "
            "PEM/DER as the raw body."
        },
    )


class InspectionSchema(Schema):
    generation = fields.String(
        metadata={
            "description": "gigaset-factory-einstein2, gigaset-factory-mac, gigaset-technologies, ours, "
            "other-listed-ca or unknown-issuer"
        }
    )
    description = fields.String()
    mac = fields.String(allow_none=True)
    mac_problem = fields.String(allow_none=True)
    subject = fields.String()
    issuer = fields.String()
    serial = fields.String()
    fingerprint_sha256 = fields.String()
    key = fields.Dict()
    signature = fields.Dict()
    validity = fields.Dict()
    chain = fields.Dict()
    ours = fields.Dict(allow_none=True)
    advice = fields.List(fields.String())


class CompatibilityQuerySchema(Schema):
    firmware = fields.String(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Device software: 2.59, 2.59.1 or 83.V2.59.1."},
    )


class CompatibilitySchema(Schema):
    firmware = fields.String()
    software = fields.String()
    table_row = fields.String()
    services = fields.Dict()
    sha1_refused = fields.Boolean()
    trust_purposes = fields.List(fields.String())
    anchors = fields.List(fields.Dict())
    missing_purposes = fields.List(fields.String())
    bundle_url = fields.String()
    notes = fields.List(fields.String())


class WindowSchema(Schema):
    start = fields.DateTime()
    end = fields.DateTime()


class RenewalInfoSchema(Schema):
    serial = fields.String()
    mac = fields.String()
    suggestedWindow = fields.Function(
        lambda i: WindowSchema().dump(i.window), metadata={"description": "RFC 9773 suggested window"}
    )
    retry_after = fields.Integer(metadata={"description": "Seconds before asking again."})


class DueQuerySchema(Schema):
    days = fields.Integer(load_default=30, validate=validate.Range(min=0, max=3650))


class DueCertificateSchema(Schema):
    serial = fields.String()
    mac = fields.String()
    profile = fields.String()
    not_after = fields.DateTime()


class RevokeRequestSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata={
            "description": "RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded, "
            "cessationOfOperation, privilegeWithdrawn.",
            "example": "keyCompromise",
        },
    )
    invalidity_date = fields.AwareDateTime(
        load_default=None,
        metadata={"description": "When the key is known or suspected to be compromised (RFC 5280 5.3.2)."},
    )


class RevocationSchema(Schema):
    serial = fields.String()
    mac = fields.String()
    revoked_at = fields.DateTime()
    reason = fields.String()
    invalidity_date = fields.DateTime(allow_none=True)


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok or unavailable"})
    checks = fields.Dict(
        keys=fields.String(), values=fields.String(), metadata={"description": "database, keystore, crl"}
    )
    details = fields.Dict()
