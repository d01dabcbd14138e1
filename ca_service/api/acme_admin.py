"""/api/v1/acme: the external account binding keys and ACME accounts, for operators."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from ca_service.api import examples
from ca_service.api.auth import principal, require, services
from ca_service.api.openapi import Blueprint, problem_docs
from ca_service.api.problems import ROW_ID, page_window
from ca_service.domain import Role

blp = Blueprint(
    "acme-admin",
    __name__,
    url_prefix="/api/v1/acme",
    description="ACME external account binding keys and accounts",
)

READERS = (Role.ADMIN, Role.AUDITOR)


class EabCreateSchema(Schema):
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "Who the key is for, e.g. the provisioning platform."},
    )
    scopes = fields.List(
        fields.String(validate=validate.Length(min=1, max=17)),
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"example": ["7C2F80"], "description": "MAC prefixes the bound account may order for."},
    )


class EabCreatedSchema(Schema):
    kid = fields.String()
    hmac_key = fields.String(metadata={"description": "base64url; shown once, stored sealed."})


class EabKeySchema(Schema):
    kid = fields.String()
    name = fields.String()
    scopes = fields.List(fields.String())
    state = fields.String(metadata={"description": "unused, bound or revoked"})
    account_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class AccountSchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"description": "valid or deactivated"})
    contact = fields.List(fields.String())
    scopes = fields.List(fields.String())
    eab_kid = fields.String()
    eab_name = fields.String()
    certificates = fields.Integer(metadata={"description": "Certificates issued to the account."})
    created_at = fields.DateTime(allow_none=True)


@blp.route("/eab-keys")
class EabKeys(MethodView):
    @blp.doc(operationId="createEabKey")
    @blp.arguments(EabCreateSchema, example=examples.EAB_CREATE)
    @blp.response(201, EabCreatedSchema, example=examples.EAB_CREATED)
    @problem_docs((409, "An active key has this name"), (422, "A scope is not a MAC prefix"))
    @require(Role.ADMIN)
    def post(self, body: dict[str, Any]) -> Any:
        """Create an ACME external account binding key (admin).

        RFC 8555 section 7.3.4: an ACME client binds its new account with ``kid`` and the HMAC
        key, which is in this answer only (stored sealed). The account may order for the MAC
        prefixes in ``scopes``.
        """
        kid, hmac_key = services().acme.create_eab(
            body["name"], tuple(body["scopes"]), actor=principal().label
        )
        return {"kid": kid, "hmac_key": hmac_key}, 201

    @blp.doc(operationId="listEabKeys")
    @blp.response(200, EabKeySchema(many=True), example=[examples.EAB_KEY])
    @require(*READERS)
    def get(self) -> Any:
        """List the external account binding keys (admin, auditor).

        Every EAB key, oldest first, with the account it bound (never the HMAC key).
        """
        return services().acme_admin.eab_keys()


@blp.route("/eab-keys/<string:kid>/revoke")
class EabKeyRevoke(MethodView):
    @blp.doc(operationId="revokeEabKey")
    @blp.response(
        200, EabKeySchema, example={**examples.EAB_KEY, "state": "revoked", "revoked_at": examples.AT}
    )
    @problem_docs((404, "Unknown kid"), (409, "Already revoked"))
    @require(Role.ADMIN)
    def post(self, kid: str) -> Any:
        """Revoke an external account binding key (admin).

        It binds no account any more, and the account it bound is deactivated (its certificates
        stay valid).
        """
        return services().acme_admin.revoke_eab(kid, principal().label)


@blp.route("/accounts")
class Accounts(MethodView):
    @blp.doc(operationId="listAcmeAccounts")
    @blp.response(200, AccountSchema(many=True), example=[examples.ACCOUNT])
    @blp.paginate()
    @require(*READERS)
    def get(self, pagination_parameters: Any) -> Any:
        """List the ACME accounts (admin, auditor).

        By id, with their EAB key and how many certificates they were issued; paginated (the
        ``X-Pagination`` header gives the total).
        """
        offset, limit = page_window(pagination_parameters)
        items, total = services().acme_admin.accounts(offset, limit)
        pagination_parameters.item_count = total
        return items


@blp.route(f"/accounts/<{ROW_ID}:account_id>/deactivate")
class AccountDeactivate(MethodView):
    @blp.doc(operationId="deactivateAcmeAccount")
    @blp.response(200, AccountSchema, example={**examples.ACCOUNT, "status": "deactivated"})
    @problem_docs((404, "Unknown account"), (409, "Already deactivated"))
    @require(Role.ADMIN)
    def post(self, account_id: int) -> Any:
        """Deactivate an ACME account (admin).

        RFC 8555 section 7.3.6: its requests are refused from now on; its certificates stay
        valid.
        """
        return services().acme_admin.deactivate(account_id, principal().label)
