"""/api/v1 renewal information (RFC 9773 windows over REST) and the report of renewals due."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from ca_service.api import examples
from ca_service.api.auth import ANY_ROLE, principal, require, services
from ca_service.api.openapi import Blueprint, problem_docs
from ca_service.api.problems import page_window
from ca_service.api.schemas import DueCertificateSchema, DueQuerySchema, RenewalInfoSchema
from ca_service.domain import parse_serial

blp = Blueprint("renewals", __name__, url_prefix="/api/v1", description="Renewal windows and lineage")


@blp.route("/certificates/<string:serial>/renewal-info")
class RenewalInfo(MethodView):
    @blp.doc(operationId="getRenewalInfo")
    @blp.response(
        200,
        RenewalInfoSchema,
        example=examples.RENEWAL_INFO,
        headers={
            "Retry-After": {"description": "Seconds before asking again.", "schema": {"type": "integer"}}
        },
    )
    @problem_docs((400, "Not a hex serial"), (404, "Unknown serial, or one outside the token's scope"))
    @require(*ANY_ROLE)
    def get(self, serial: str) -> Any:
        """When to renew a certificate (RFC 9773 window).

        The same suggested window ACME's renewalInfo gives, moved to now when the certificate is
        revoked or its issuer is retiring. Honour ``Retry-After``.
        """
        canonical = parse_serial(serial)
        services().enrollment.certificate(canonical, principal())  # scope check, 404 outside
        info = services().renewals.for_serial(canonical)
        return info, 200, {"Retry-After": str(info.retry_after)}


@blp.route("/renewals/due")
class Due(MethodView):
    @blp.doc(operationId="listRenewalsDue")
    @blp.arguments(DueQuerySchema, location="query")
    @blp.response(200, DueCertificateSchema(many=True), example=[examples.DUE])
    @blp.paginate()
    @require(*ANY_ROLE)
    def get(self, query: dict[str, Any], pagination_parameters: Any) -> Any | Response:
        """Certificates due for renewal.

        Valid certificates that expire within ``days`` and have no successor, soonest first;
        paginated (``page``, ``page_size``; the total is in ``X-Pagination``).
        """
        offset, limit = page_window(pagination_parameters)
        items, total = services().renewals.due(
            query["days"], principal().mac_prefixes, offset=offset, limit=limit
        )
        pagination_parameters.item_count = total
        return items
