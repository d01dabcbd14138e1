"""REST endpoints (flask-smorest blueprints) and their problem+json rendering."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from ca_service.api import certificates, devices, problems, public, revocation


def register(app: Flask, api: Api) -> None:
    problems.install(app)
    for blueprint in (
        certificates.blp,
        devices.blp,
        public.blp,
        public.health,
        revocation.blp,
        revocation.crl,
        revocation.ocsp,
        revocation.metrics,
    ):
        api.register_blueprint(blueprint)
