"""The floor of the stack for one durable issuance: what gunicorn, Flask and SQLAlchemy Core cost
when they do only what every `POST /api/v1/certificates` must do, with none of the service
around it. bench/issue_rate.py serves it through the same gunicorn configuration and loads it
with the same wrk, beside the service, so that the service's rate can be read against the
best this stack reaches on this machine.

Per request, as the service does it: the bearer token looked up by its SHA-256 (one SELECT)
and compared in constant time; the JSON body read; the CSR checked with the service's policy;
the certificate signed by the active issuing CA with a fresh serial; its row and its audit row
committed in one write transaction (design decision 6) on the service's own engines (SQLite WAL
with BEGIN IMMEDIATE, or PostgreSQL); then the PEM answered. Left out, as the service's cost
above the floor: Flask-smorest and marshmallow, ORM sessions, the issuer-still-signs check,
rate limits, idempotency keys, the device row, metrics and logs.

    gunicorn -c deploy/gunicorn.conf.py 'bench.stack_floor:floor_app()'   (env as the service)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any, cast

from cryptography.hazmat.primitives import serialization
from flask import Flask, Response, request
from sqlalchemy import Table, bindparam, insert, select

from ca_service import build_services
from ca_service.authority import random_serial
from ca_service.config import load_settings
from ca_service.domain import serial_text
from ca_service.enrollment.tokens import token_hash
from ca_service.policy import CsrRules, check_csr
from ca_service.store.models import AuditRow, CertificateRow, TokenRow


def floor_app() -> Flask:
    settings = load_settings()
    services = build_services(settings)
    db, profile, rules = services.db, settings.profile("device"), CsrRules()
    certificates = insert(cast(Table, CertificateRow.__table__))
    audit = insert(cast(Table, AuditRow.__table__))
    tokens = cast(Table, TokenRow.__table__).c
    by_hash = select(tokens.name, tokens.token_hash).where(tokens.token_hash == bindparam("token_hash"))
    app = Flask("stack_floor")
    app.extensions["ca_service"] = services  # the configuration's worker hooks, as for the service

    def refuse(status: int) -> Response:
        return Response(json.dumps({"status": status}), status, mimetype="application/problem+json")

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post("/api/v1/certificates")
    def issue() -> Any:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        digest = token_hash(presented.strip())
        with db.engine.connect() as conn:
            token = conn.execute(by_hash, {"token_hash": digest}).first()
        if scheme.lower() != "bearer" or token is None or not hmac.compare_digest(token.token_hash, digest):
            return refuse(401)
        facts = check_csr(request.get_json()["csr"], rules)
        issuer_id, issuer = services.signers.active()
        cert = issuer.sign_device_certificate(facts.public_key, facts.mac, profile, random_serial())
        der = cert.public_bytes(serialization.Encoding.DER)
        serial, now = serial_text(cert.serial_number), datetime.now(UTC)
        with db.write_engine.begin() as conn:
            conn.execute(
                certificates,
                {
                    "serial": serial,
                    "issuer_id": issuer_id,
                    "mac": facts.mac.value,
                    "profile": profile.name,
                    "key_type": facts.key_type,
                    "not_before": cert.not_valid_before_utc,
                    "not_after": cert.not_valid_after_utc,
                    "status": "valid",
                    "fingerprint_sha256": hashlib.sha256(der).hexdigest(),
                    "der": der,
                    "created_by": token.name,
                    "created_at": now,
                },
            )
            conn.execute(
                audit,
                {
                    "at": now,
                    "actor": token.name,
                    "action": "certificate.issue",
                    "outcome": "success",
                    "mac": facts.mac.value,
                    "serial": serial,
                    "detail": {"profile": profile.name, "issuer": issuer.name},
                },
            )
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        return {"serial": serial, "certificate": pem}, 201

    return app
