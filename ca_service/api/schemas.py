"""Marshmallow schemas of the REST API (documented in the OpenAPI document)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class ProblemSchema(Schema):
    type = fields.String(metadata={"example": "urn:ca-service:problem:bad-key"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String(
        metadata={"example": "RSA keys shorter than 2048 bits are refused (this one has 1024)."}
    )
    instance = fields.String()
    request_id = fields.String()


class IssueRequestSchema(Schema):
    csr = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32768),
        metadata={"description": "PKCS#10 CSR in PEM; its CN is the device MAC (any common spelling)."},
    )
    profile = fields.String(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "Certificate profile; default 'device'."},
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


class DeviceSchema(Schema):
    mac = fields.String()
    model = fields.String(allow_none=True)
    firmware = fields.String(allow_none=True)
    labels = fields.Dict()
    created_at = fields.DateTime()
    certificates = fields.List(fields.Nested(CertificateSchema))


class ProfileSchema(Schema):
    name = fields.String()
    description = fields.String()
    validity_days = fields.Integer()
    client_auth = fields.Boolean()
    server_auth = fields.Boolean()
    san_permanent_identifier = fields.Boolean()


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
