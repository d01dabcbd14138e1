"""Operators read the audit log (GET /api/v1/audit: admins and auditors, filters, pages);
token names are reusable after revocation; a scope on a token that acts on every MAC is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from ca_service import Services
from ca_service.enrollment.tokens import authenticate, create_token, list_tokens, revoke_token
from ca_service.errors import CAError, Kind
from tests.helpers import make_csr


def test_a_revoked_token_name_is_free_again(services: Services) -> None:
    old = create_token(services.db, name="ops", role="admin")
    with pytest.raises(CAError) as taken:
        create_token(services.db, name="ops", role="admin")
    assert taken.value.kind is Kind.CONFLICT and "revoke it first" in taken.value.detail
    revoke_token(services.db, "ops")
    new = create_token(services.db, name="ops", role="auditor")
    assert authenticate(services.db, new).role.value == "auditor"
    with pytest.raises(CAError):
        authenticate(services.db, old)  # the old token stays revoked
    assert [(t.name, t.role, t.revoked_at is None) for t in list_tokens(services.db)] == [
        ("ops", "admin", False),
        ("ops", "auditor", True),
    ]
    revoke_token(services.db, "ops")  # the active one
    with pytest.raises(CAError) as again:
        revoke_token(services.db, "ops")
    assert again.value.kind is Kind.CONFLICT


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_a_scope_on_a_token_that_sees_every_mac_is_refused(services: Services, role: str) -> None:
    with pytest.raises(CAError) as refused:
        create_token(services.db, name="x", role=role, scopes=("7C2F80",))
    assert refused.value.detail == (
        f"An {role} token acts on every MAC; --scope is for provisioner tokens only."
    )
    assert list_tokens(services.db) == []


def _events(client: FlaskClient, headers: dict[str, str], **query: Any) -> Any:
    return client.get("/api/v1/audit", query_string=query, headers=headers)


def test_audit_log_filters_and_pages(client: FlaskClient, token: Any, tmp_path: Path) -> None:
    admin = token("admin", name="ops")
    auditor = token("auditor", name="audit")
    _, one = make_csr(tmp_path, "7C2F80C6E5C2", name="one")
    _, two = make_csr(tmp_path, "7C2F80C6E5C3", name="two")
    serials = [
        client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin).json["serial"]
        for csr in (one, two, one)
    ]
    everything = _events(client, auditor)
    assert everything.status_code == 200
    assert [e["action"] for e in everything.json][:3] == ["certificate.issue"] * 3  # newest first
    issued = _events(client, auditor, action="certificate.issue", mac="7c:2f:80:c6:e5:c2")
    assert [e["serial"] for e in issued.json] == [serials[2], serials[0]]
    assert all(e["actor"] == "admin:ops" and e["outcome"] == "success" for e in issued.json)
    by_serial = _events(client, auditor, serial=":".join(serials[1][i : i + 2] for i in range(0, 40, 2)))
    assert [e["mac"] for e in by_serial.json] == ["7C2F80C6E5C3"]
    tokens = _events(client, auditor, action="token.*", page_size=1)
    assert len(tokens.json) == 1 and '"total": 2' in tokens.headers["X-Pagination"]
    since = everything.json[0]["at"]
    assert {e["id"] for e in _events(client, auditor, since=since).json} == {everything.json[0]["id"]}
    assert _events(client, auditor, until="2000-01-01T00:00:00Z").json == []
    assert _events(client, auditor, actor="admin:nobody").json == []


def test_audit_log_is_for_admins_and_auditors(client: FlaskClient, token: Any) -> None:
    assert _events(client, token("admin")).status_code == 200
    refused = _events(client, token("provisioner", "7C2F80"))
    assert refused.status_code == 403 and "admin, auditor" in refused.json["detail"]
    assert _events(client, {}).status_code == 401
    bad = _events(client, token("auditor"), mac="not-a-mac")
    assert bad.status_code in (400, 422) and bad.mimetype == "application/problem+json"
    naive = _events(client, token("auditor"), since="2026-11-01T00:00:00")
    assert naive.status_code == 422
