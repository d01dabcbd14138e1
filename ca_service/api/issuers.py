"""/api/v1/issuers: our CAs with their state, key URI and validity (admin and auditor)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields

from ca_service.api import examples
from ca_service.api.auth import require, services
from ca_service.api.openapi import Blueprint
from ca_service.domain import Role
from ca_service.issuers.lifecycle import list_issuers

blp = Blueprint("issuers", __name__, url_prefix="/api/v1", description="Our CAs (root and issuing)")


class IssuerSchema(Schema):
    name = fields.String(metadata={"example": "issuing-20260101120000"})
    role = fields.String(metadata={"description": "root | issuing"})
    state = fields.String(
        metadata={
            "description": "pending | active | retiring | retired | revoked (issuing); active | external "
            "(root). Retiring issuers still sign revocation data for what they issued; revoked ones "
            "(by the root: 'ca-service issuer revoke', or an imported root CRL) sign nothing."
        }
    )
    subject = fields.String()
    key_uri = fields.String(
        metadata={
            "description": "Where the key lives (file: or pkcs11:); never a PIN",
            "example": "pkcs11:token=ca-service;object=issuing-2026?module-path=/usr/lib/softhsm/"
            "libsofthsm2.so&pin-source=file:/etc/ca-service/pin",
        }
    )
    not_before = fields.DateTime(allow_none=True)
    not_after = fields.DateTime(allow_none=True)
    parent = fields.String(allow_none=True)
    certificates = fields.Integer(metadata={"description": "Certificates this CA issued"})
    last_certificate_expires = fields.DateTime(allow_none=True)


@blp.route("/issuers")
class Issuers(MethodView):
    @blp.doc(operationId="listIssuers")
    @blp.response(200, IssuerSchema(many=True), example=[examples.ISSUER])
    @require(Role.ADMIN, Role.AUDITOR)
    def get(self) -> Any:
        """List our CAs with their state (admin, auditor).

        Oldest first: the root(s) and every issuing CA, with key URI, validity and how many
        certificates each issued.
        """
        return list_issuers(services().db)
