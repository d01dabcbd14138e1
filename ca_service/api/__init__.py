"""REST endpoints (flask-smorest blueprints) and their problem+json rendering."""

from __future__ import annotations

from flask import Flask

from ca_service.api import (
    acme_admin,
    audit,
    certificates,
    devices,
    issuers,
    problems,
    provisioning,
    public,
    renewals,
    revocation,
    trust,
)
from ca_service.api.openapi import Api
from ca_service.api.schemas import ProblemSchema


def register(app: Flask, api: Api) -> None:
    api.spec.components.schema("Problem", schema=ProblemSchema)
    problems.install(app)
    provisioning.install(app)
    for blueprint in (
        acme_admin.blp,
        audit.blp,
        certificates.blp,
        devices.blp,
        issuers.blp,
        provisioning.blp,
        public.blp,
        public.health,
        renewals.blp,
        trust.blp,
        trust.public,
        revocation.blp,
        revocation.crl,
        revocation.ocsp,
    ):
        api.register_blueprint(blueprint)
