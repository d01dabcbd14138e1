"""ca-service: a private certificate authority for device client certificates.

:func:`create_app` is the only place where the parts are wired together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask
from flask_smorest import Api
from sqlalchemy import text

from ca_service import logs
from ca_service.authority.registry import IssuerCache, IssuerSet
from ca_service.bundle.service import Bundle
from ca_service.config import Settings, load_settings
from ca_service.enrollment import Enrollment
from ca_service.enrollment.acme import AcmeAuthority
from ca_service.enrollment.ca_setup import issuer_records, issuer_version
from ca_service.enrollment.credentials import Credentials
from ca_service.enrollment.devices import Devices
from ca_service.errors import CAError
from ca_service.renewal.info import Renewals
from ca_service.revocation import OcspResponder, Publisher, Revocation
from ca_service.store import Database

__version__ = "0.1.0"
log = logging.getLogger("ca_service")
WAITS_FOR_KEYSTORE = "Waits for the key store (see 'keystore')."


@dataclass
class Services:
    """What the web layers call: one instance per worker process."""

    settings: Settings
    db: Database
    issuers: IssuerCache
    enrollment: Enrollment
    credentials: Credentials
    devices: Devices
    bundle: Bundle
    acme: AcmeAuthority
    renewals: Renewals
    revocation: Revocation
    ocsp: OcspResponder
    publisher: Publisher

    def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            with self.db.read() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except CAError as exc:
            checks["database"] = exc.detail
        try:
            self.issuers.self_test()
            checks["keystore"] = "ok"
        except Exception as exc:  # a key store fault of any kind makes us not ready
            if not isinstance(exc, CAError):
                self.issuers.invalidate()
            # /healthz is public: the reason (it may name key files or module paths) goes to
            # the log only
            log.warning("key store not ready", extra={"detail": getattr(exc, "detail", type(exc).__name__)})
            checks["keystore"] = "The issuing key cannot sign; the service log says why."
        try:
            checks["crl"] = self.revocation.health_check()
        except CAError as exc:
            checks["crl"] = exc.detail if checks["keystore"] == "ok" else WAITS_FOR_KEYSTORE
        return checks

    def details(self) -> dict[str, object]:
        """Facts for operators that do not make the service unready."""
        try:
            expiring = self.bundle.expiring()
        except CAError:  # the reason is in /healthz checks (key store details only in the log)
            return {"trust_bundle": "The trust bundle cannot be read now; see 'checks'."}
        return {
            "trust_anchors_expiring_within_90_days": len(expiring),
            "trust_anchors_expiring": [
                {"label": e.label, "purpose": e.purpose, "not_after": e.not_after.isoformat()}
                for e in expiring
            ],
        }


def build_services(settings: Settings) -> Services:
    db = Database(settings.sqlalchemy_url)
    issuers = IssuerCache(
        lambda: IssuerSet.load(issuer_records(db), settings),
        lambda: issuer_version(db),
        settings.issuer_refresh_seconds,
    )
    enrollment = Enrollment(db, issuers, settings)
    revocation = Revocation(db, issuers, settings)
    return Services(
        settings,
        db,
        issuers,
        enrollment,
        Credentials(enrollment, settings),
        Devices(enrollment),
        Bundle(db, issuers),
        AcmeAuthority(db, enrollment, settings),
        Renewals(db, settings),
        revocation,
        OcspResponder(db, issuers, settings),
        Publisher(revocation),
    )


def create_app(settings: Settings | None = None) -> Flask:
    """The WSGI application. Settings default to :func:`load_settings` (env and TOML)."""
    from ca_service import acme
    from ca_service.api import docs, register

    settings = settings or load_settings()
    logs.configure(settings.log_level)
    app = Flask("ca_service")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="ca-service",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Private CA for device client certificates (CN = device MAC). "
                "Authenticate with 'Authorization: Bearer <token>' from 'ca-service token create'.",
            },
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        },
    )
    services = build_services(settings)
    app.extensions["ca_service"] = services
    api = Api(app)
    register(app, api)
    app.register_blueprint(acme.bp)
    app.register_blueprint(docs.bp)  # /docs: Swagger UI from the pinned package (or swagger_ui_url)
    return app
