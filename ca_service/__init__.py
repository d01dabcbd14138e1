"""ca-service: a private certificate authority for device client certificates.

:func:`create_app` is the only place where the parts are wired together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from ca_service import logs
from ca_service.bundle.service import Bundle
from ca_service.clock import SYSTEM, Clock
from ca_service.config import Settings, load_settings, unknown_variables
from ca_service.enrollment import Enrollment
from ca_service.enrollment.acme import AcmeAuthority
from ca_service.enrollment.acme_admin import AcmeAdmin
from ca_service.enrollment.credentials import Credentials
from ca_service.enrollment.devices import Devices
from ca_service.enrollment.tokens import create_token
from ca_service.errors import CAError, Kind
from ca_service.files import write_private
from ca_service.issuers import Directory, Signers, lifecycle
from ca_service.renewal.info import Renewals
from ca_service.revocation import OcspResponder, Publisher, Revocation
from ca_service.store import Database
from ca_service.store.db import Bounds, DatabaseUnavailable, serving_requests

__version__ = "0.1.0"
log = logging.getLogger("ca_service")
WAITS_FOR_KEYSTORE = "Waits for the key store (see 'keystore')."
WAITS_FOR_DATABASE = "Waits for the database (see 'database')."
KEYSTORE_NOT_READY = "The issuing key cannot sign; the service log says why."
HEALTH_SELF_TEST_SECONDS = 5.0


@dataclass
class Services:
    """What the web layers call: one instance per worker process."""

    settings: Settings
    db: Database
    directory: Directory
    signers: Signers
    enrollment: Enrollment
    credentials: Credentials
    devices: Devices
    bundle: Bundle
    acme: AcmeAuthority
    renewals: Renewals
    revocation: Revocation
    ocsp: OcspResponder
    publisher: Publisher
    clock: Clock
    acme_admin: AcmeAdmin

    def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            with self.db.read() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except CAError as exc:
            checks["database"] = exc.detail
        try:
            # a test younger than HEALTH_SELF_TEST_SECONDS is reused: a probe costs no signature
            self.signers.self_test(max_age=HEALTH_SELF_TEST_SECONDS)  # logs the reason itself
            checks["keystore"] = "ok"
        except DatabaseUnavailable:  # the CA records could not be read: not the key store's fault
            checks["keystore"] = WAITS_FOR_DATABASE
        except CAError:
            checks["keystore"] = KEYSTORE_NOT_READY
        if checks["database"] != "ok":
            checks["crl"] = WAITS_FOR_DATABASE  # the CRL state lives there
            return checks
        try:
            checks["crl"] = self.revocation.health_check()
        except CAError as exc:
            checks["crl"] = exc.detail if checks["keystore"] == "ok" else WAITS_FOR_KEYSTORE
        return checks

    def details(self) -> dict[str, object]:
        """Facts for operators that do not make the service unready."""
        try:
            expiring = self.bundle.expiring()
            warnings = self.revocation.warnings()
        except CAError:  # the reason is in /healthz checks (key store details only in the log)
            return {"trust_bundle": "The trust bundle cannot be read now; see 'checks'."}
        return {
            "warnings": warnings,
            "trust_anchors_expiring_within_90_days": len(expiring),
            "trust_anchors_expiring": [
                {"label": e.label, "purpose": e.purpose, "not_after": e.not_after.isoformat()}
                for e in expiring
            ],
        }

    def bootstrap(self) -> Path | None:
        """On an empty database: create a development CA, publish its first (empty) CRL and
        write an admin token file (0600) into the home. Returns the token file when it made one.
        Two instances starting at once on an empty database take turns: the second finds the
        first one's CA and starts with it."""
        if lifecycle.records(self.db):
            return None
        try:
            lifecycle.initialize(self.db, self.settings)
        except CAError as exc:
            if exc.kind is Kind.CONFLICT:  # another instance made the CA meanwhile
                return None
            raise
        self.revocation.publish_due()
        token_file = self.settings.home / "admin-token"
        write_private(token_file, (create_token(self.db, name="dev-admin", role="admin") + "\n").encode())
        return token_file


def build_services(settings: Settings, clock: Clock = SYSTEM) -> Services:
    db = Database(
        settings.sqlalchemy_url,
        Bounds(
            settings.db_connect_timeout,
            settings.db_statement_timeout,
            settings.db_lock_timeout,
            settings.db_pool_timeout,
            transaction=settings.db_transaction_timeout,
            pause=settings.db_pause_seconds,
        ),
    )
    directory = Directory(db, settings.issuer_refresh_seconds)
    signers = Signers(directory, settings, clock)
    enrollment = Enrollment(db, directory, signers, settings, clock)
    revocation = Revocation(db, directory, signers, settings, clock)
    return Services(
        settings,
        db,
        directory,
        signers,
        enrollment,
        Credentials(enrollment, settings),
        Devices(enrollment),
        Bundle(db, settings.issuer_refresh_seconds, clock),
        AcmeAuthority(db, enrollment, settings),
        Renewals(db, settings, clock),
        revocation,
        OcspResponder(db, directory, signers, settings, clock),
        Publisher(revocation),
        clock,
        AcmeAdmin(db, clock),
    )


def create_app(settings: Settings | None = None, clock: Clock = SYSTEM) -> Flask:
    """The WSGI application. Settings default to :func:`load_settings` (env and TOML)."""
    from ca_service import acme
    from ca_service.api import docs, problems, register
    from ca_service.api.openapi import Api

    if settings is None:  # from the environment: say which CA_SERVICE_* names it ignores
        settings = load_settings()
        logs.configure(settings.log_level)
        for warning in unknown_variables():
            log.warning(warning)
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
                "Authenticate with 'Authorization: Bearer <token>' from 'ca-service token create'. "
                "Every error is an RFC 9457 problem (application/problem+json) with a request_id. "
                "ACME (RFC 8555) is under /acme/ and not in this document: its directory, "
                "/acme/directory, describes it, and its bodies are JWS (application/jose+json).",
            },
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        },
    )
    services = build_services(settings, clock)
    app.extensions["ca_service"] = services
    api = Api(app)
    register(app, api)
    app.register_blueprint(acme.bp)
    app.register_blueprint(docs.bp)
    wsgi_app = app.wsgi_app

    def bounded(environ: dict[str, Any], start_response: Any) -> Any:
        """Each request's database transactions run under the wall-clock bound (decision 10)."""
        with serving_requests():
            return wsgi_app(environ, start_response)

    app.wsgi_app = bounded  # type: ignore[method-assign]  # /docs: Swagger UI from the pinned package (or swagger_ui_url)

    def in_acme() -> bool:
        return request.path == "/acme" or request.path.startswith("/acme/")

    def _problem(exc: Exception) -> Response:
        """Every failure as a problem document: ACME's (RFC 8555 section 6.7) under /acme/,
        REST's (RFC 9457) elsewhere; also when routing failed before a blueprint was reached."""
        return acme.render(exc) if in_acme() else problems.render(exc)

    # HTTPException too: it replaces flask-smorest's own handler (its error shape is not ours)
    for caught in (Exception, HTTPException):
        app.register_error_handler(caught, _problem)

    @app.after_request
    def _acme_headers(response: Response) -> Response:
        return acme.finish(response) if in_acme() else response

    return app
