"""Failures answer with problems that carry a request id and never a traceback or a key."""

from __future__ import annotations

from pathlib import Path

from ca_service import create_app
from ca_service.store.models import AuditRow
from tests.helpers import make_csr


def test_database_unavailable_is_503(make_settings, tmp_path: Path) -> None:
    app = create_app(make_settings(database_url=f"sqlite:///{tmp_path}/missing/dir/ca.db"))
    client = app.test_client()
    response = client.get("/api/v1/certificates", headers={"Authorization": "Bearer cas_x"})
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    assert "database is not available" in response.json["detail"] and "Traceback" not in response.get_data(
        True
    )
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json["checks"]["database"] != "ok"


def test_unexpected_error_shows_request_id_only(app, client) -> None:
    @app.route("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: -----BEGIN PRIVATE KEY-----")

    response = client.get("/api/v1/boom", headers={"X-Request-Id": "abcdef0123456789"})
    assert response.status_code == 500 and response.mimetype == "application/problem+json"
    text = response.get_data(as_text=True)
    assert "secret" not in text and "PRIVATE KEY" not in text and "Traceback" not in text
    assert response.json["request_id"] == "abcdef0123456789" and "abcdef0123456789" in response.json["detail"]


def test_no_key_material_in_responses_or_logs(client, admin, services, tmp_path: Path, capfd) -> None:
    """A whole issuance flow: neither the CA key files' contents nor the passphrase show up."""
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    bodies = [
        client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin).get_data(),
        client.get("/ca/chain.pem").get_data(),
        client.get("/healthz").get_data(),
        client.get("/openapi.json").get_data(),
    ]
    passphrase = (services.settings.keys_dir / "passphrase").read_bytes().strip()
    key_bodies = [
        line for p in services.settings.keys_dir.glob("*.pem") for line in p.read_bytes().splitlines()[1:-1]
    ]
    out, err = capfd.readouterr()
    for blob in [*bodies, out.encode(), err.encode()]:
        assert b"PRIVATE KEY" not in blob and passphrase not in blob
        assert not any(line in blob for line in key_bodies)


def test_token_changes_are_audited(services) -> None:
    from ca_service.enrollment.tokens import create_token, revoke_token

    create_token(services.db, name="ops", role="auditor", actor="cli:alice")
    revoke_token(services.db, "ops", actor="cli:bob")
    with services.db.read() as session:
        rows = session.query(AuditRow).filter(AuditRow.action.like("token.%")).order_by(AuditRow.id).all()
        assert [(r.action, r.actor, r.detail["name"]) for r in rows] == [
            ("token.create", "cli:alice", "ops"),
            ("token.revoke", "cli:bob", "ops"),
        ]
