"""/api/v1/audit: the audit log for admins and auditors, filtered and paginated."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from ca_service.api import examples
from ca_service.api.auth import require, services
from ca_service.api.openapi import Blueprint
from ca_service.api.problems import page_window
from ca_service.domain import Role
from ca_service.store import audit as store

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="The audit log")

READERS = (Role.ADMIN, Role.AUDITOR)


class AuditQuerySchema(Schema):
    since = fields.AwareDateTime(
        load_default=None,
        metadata={"description": "From this time on (inclusive), e.g. 2026-11-01T00:00:00Z."},
    )
    until = fields.AwareDateTime(load_default=None, metadata={"description": "Before this time."})
    actor = fields.String(
        load_default=None,
        validate=validate.Length(max=160),
        metadata={"description": "As recorded: admin:ops, provisioner:acme-account-3, cli:alice."},
    )
    action = fields.String(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "e.g. certificate.issue; acme.* for every action starting with acme."},
    )
    mac = fields.String(
        load_default=None, validate=validate.Length(max=32), metadata={"example": "7C2F80C6E5C2"}
    )
    serial = fields.String(load_default=None, validate=validate.Length(max=64))


class AuditEventSchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.String()
    action = fields.String(metadata={"example": "certificate.issue"})
    outcome = fields.String(metadata={"description": "success, refused or error"})
    mac = fields.String(allow_none=True)
    serial = fields.String(allow_none=True)
    detail = fields.Dict(metadata={"description": "What the action recorded (never secrets)."})


@blp.route("/audit")
class Audit(MethodView):
    @blp.doc(operationId="searchAudit")
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditEventSchema(many=True), example=[examples.AUDIT_EVENT])
    @blp.paginate()
    @require(*READERS)
    def get(self, query: dict[str, Any], pagination_parameters: Any) -> Any:
        """Search the audit log (admin, auditor).

        Newest first: who did what, when, to which MAC and serial, and how it ended. Filters
        combine; paginated (the ``X-Pagination`` header gives the total).
        """
        offset, limit = page_window(pagination_parameters)
        with services().db.read() as session:
            items, total = store.search(session, store.AuditFilter.of(**query), offset=offset, limit=limit)
        pagination_parameters.item_count = total
        return items
