"""Hostile requests from the security audit (issue 13), one test each: the answer (status, problem
type) and that nothing was written (the row count of every table before and after), on SQLite
and PostgreSQL wherever storage is involved."""

from __future__ import annotations

import re
import runpy
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

import ca_service
from ca_service import Services
from ca_service.errors import CAError
from ca_service.metrics import DOWNLOAD_PROBES
from ca_service.store.models import Base, DownloadTokenRow, WrappedKeyRow, utcnow

PREFIX = "urn:ca-service:problem:"


def rows(services: Services) -> dict[str, int]:
    """The number of rows of every table: what a refused request must leave unchanged."""
    with services.db.read() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def problem(response: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.data[:400])
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.json
    if kind is not None:
        assert body["type"] == PREFIX + kind, body
    return body


def warm_up(client: FlaskClient) -> None:
    """One ACME answer: the nonce HMAC key is made once per database, by the first nonce."""
    assert client.head("/acme/new-nonce").status_code == 200


# -- unknown methods: refused before routing, one bounded metric label ---------------------------
def test_random_methods_are_refused_and_do_not_grow_the_metrics(
    client: FlaskClient, services: Services
) -> None:
    warm_up(client)
    before = rows(services)
    methods = [secrets.token_hex(6).upper() for _ in range(30)]
    for method in methods:
        for path in ("/api/v1/certificates", "/acme/new-order", "/nowhere", "/provisioning/key/x"):
            response = client.open(path, method=method)
            assert response.status_code == 501, (method, path)
            body = response.json
            if path.startswith("/acme/"):
                assert body["type"] == "urn:ietf:params:acme:error:malformed"
            else:
                assert body["type"] == PREFIX + "not-implemented"
            assert "GET" in body["detail"]
    metrics = client.get("/metrics").text
    assert not any(m in metrics for m in methods)
    labels = set(re.findall(r'ca_http_request_duration_seconds_count\{[^}]*method="([^"]+)"', metrics))
    assert labels <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in labels
    assert rows(services) == before


# -- authentication comes before validation ----------------------------------------------------
def _api_operations(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every REST operation that needs a token, with placeholder parameters."""
    from ca_service.api.auth import required_roles

    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        path = re.sub(r"<[^>]+>", "7C2F80E0D605", path)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            with app.test_request_context(path, method=method):
                if required_roles(app.view_functions[rule.endpoint]) is not None:
                    found.append((method, path))
    return found


def test_without_a_token_every_operation_is_401_before_validation(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    operations = _api_operations(app)
    assert len(operations) > 20 and ("POST", "/api/v1/certificates") in operations
    before = rows(services)
    for method, path in operations:
        for body in ({"json": {"junk": [1] * 3}}, {"data": b"\x00" * 10, "content_type": "text/plain"}):
            response = client.open(path + "?page=-1&days=x&expires_before=y", method=method, **body)
            problem(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert rows(services) == before


def test_an_auditor_is_refused_before_validation(client: FlaskClient, services: Services, token: Any) -> None:
    auditor = token("auditor")
    before = rows(services)
    response = client.post("/api/v1/certificates", json={"no": "csr"}, headers=auditor)
    problem(response, 403, "forbidden")
    assert rows(services) == before


# -- one-time downloads: only a GET by the device consumes, probes write nothing ---------------
MAC = "7C2F80E0D605"


def delivery(client: FlaskClient, admin: dict[str, str]) -> dict[str, Any]:
    response = client.post(f"/api/v1/devices/{MAC}/credentials", json={}, headers=admin)
    assert response.status_code == 201
    return response.json  # type: ignore[no-any-return]


def path_of(url: str) -> str:
    return url.removeprefix("http://ca.test")


def key_state(services: Services) -> tuple[int, Any]:
    """(wrapped keys, used_at of every token): what consuming a download changes."""
    with services.db.read() as session:
        keys = session.scalar(select(func.count()).select_from(WrappedKeyRow))
        used = sorted((t.id, t.used_at, t.fetches) for t in session.scalars(select(DownloadTokenRow)))
    return keys or 0, used


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"])
def test_only_get_consumes_a_download(
    client: FlaskClient, admin: dict[str, str], services: Services, method: str
) -> None:
    body = delivery(client, admin)
    before, state = rows(services), key_state(services)
    for url in (body["key_url"], body["certificate_url"]):
        response = client.open(path_of(url), method=method, data=b"x")
        assert response.status_code == 405, (method, response.status_code)
        assert response.headers["Allow"] == "GET"
        if method != "HEAD":
            assert problem(response, 405)["allowed_methods"] == ["GET"]
    assert rows(services) == before and key_state(services) == state
    assert client.get(path_of(body["key_url"])).status_code == 200  # the device still gets its key


def test_double_slash_is_not_redirected(
    client: FlaskClient, admin: dict[str, str], services: Services
) -> None:
    body = delivery(client, admin)
    token = body["key_url"].rsplit("/", 1)[1]
    before, state = rows(services), key_state(services)
    for path in (f"/provisioning//key/{token}", f"/provisioning/key//{token}", f"//provisioning/key/{token}"):
        response = client.get(path)
        assert response.status_code == 404 and "Location" not in response.headers, path
        assert token not in response.headers.get("Location", "")
    assert rows(services) == before and key_state(services) == state


def test_access_log_redaction_normalises_the_path() -> None:
    """gunicorn's access log (its config file is run as a file, not imported as our module)."""
    conf = runpy.run_path(str(Path(ca_service.__file__).parent / "gunicorn_conf.py"))
    redact_download_tokens = conf["redact_download_tokens"]
    token = secrets.token_urlsafe(32)
    for line in (
        f"GET /provisioning/key/{token} HTTP/1.1",
        f"GET /provisioning//key/{token} HTTP/1.1",
        f"GET /provisioning/key//{token}?x=1 HTTP/1.1",
        f"GET /provisioning/%6Bey/{token} HTTP/1.1",
        f"GET /provisioning%2Fkey%2F{token} HTTP/1.1",
        f"GET /PROVISIONING/Key/{token} HTTP/1.1",
        f"GET /provisioning/./key/{token} HTTP/1.1",
    ):
        redacted = redact_download_tokens(line)
        assert token not in redacted and "(redacted)" in redacted, line
    assert (
        redact_download_tokens("GET /provisioning//key/t HTTP/1.1")
        == "GET /provisioning/key/(redacted) HTTP/1.1"
    )
    assert redact_download_tokens("GET /ca//root.pem HTTP/1.1") == "GET /ca//root.pem HTTP/1.1"


def test_unknown_tokens_write_nothing(client: FlaskClient, admin: dict[str, str], services: Services) -> None:
    body = delivery(client, admin)
    cert_token = body["certificate_url"].rsplit("/", 1)[1]
    before, state = rows(services), key_state(services)
    probes = DOWNLOAD_PROBES.labels("key")._value.get()
    for path in ("/provisioning/key/" + "A" * 43, f"/provisioning/key/{cert_token}", "/provisioning/key/x"):
        problem(client.get(path), 404, "not-found")
    problem(client.get("/provisioning/cert/" + "B" * 43), 404, "not-found")
    assert rows(services) == before and key_state(services) == state
    assert DOWNLOAD_PROBES.labels("key")._value.get() == probes + 3
    assert "ca_download_unknown_token_total" in client.get("/metrics").text


def test_provisioning_gets_are_safe(client: FlaskClient, admin: dict[str, str], services: Services) -> None:
    """A monitoring probe that GETs the document and the step again and again neither mints URLs
    nor expires the pending ones: the device's download stays valid."""
    made = client.post(f"/api/v1/devices/{MAC}/provisioning-step", json={}, headers=admin).json
    before, state = rows(services), key_state(services)
    for _ in range(5):
        for path in ("provisioning.xml", "provisioning-step"):
            response = client.get(f"/api/v1/devices/{MAC}/{path}", headers=admin)
            assert response.status_code == 200 and made["key_url"].encode() in response.data
        assert client.head(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).status_code == 200
    assert rows(services) == before and key_state(services) == state
    assert client.get(path_of(made["key_url"])).status_code == 200


def test_gets_before_any_post_make_nothing(
    client: FlaskClient, admin: dict[str, str], services: Services
) -> None:
    before = rows(services)
    assert client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).status_code == 204
    assert b"<step" not in client.get(f"/api/v1/devices/{MAC}/provisioning.xml", headers=admin).data
    assert rows(services) == before


@pytest.mark.parametrize("live_old_url", [False, True], ids=["old-url-expired", "two-live-urls"])
def test_concurrent_fetches_of_an_old_and_a_new_url_get_the_key_once(
    client: FlaskClient, admin: dict[str, str], services: Services, live_old_url: bool
) -> None:
    """The claim re-checks the token's expiry, and the key row is taken by one DELETE ...
    RETURNING: of concurrent fetches of the superseded and the current key URL, one gets it."""
    old = client.post(f"/api/v1/devices/{MAC}/provisioning-step", json={}, headers=admin).json
    new = client.post(
        f"/api/v1/devices/{MAC}/provisioning-step", json={"fresh_urls": True}, headers=admin
    ).json
    if live_old_url:  # as if the old URL had not been expired: only the key row decides
        with services.db.write() as session:
            session.execute(update(DownloadTokenRow).values(expires_at=utcnow() + timedelta(hours=1)))
    tokens = [old["key_url"].rsplit("/", 1)[1], new["key_url"].rsplit("/", 1)[1]] * 4
    barrier = threading.Barrier(len(tokens))

    def fetch(token: str) -> str:
        barrier.wait()
        try:
            return services.credentials.download("key", token, None).body.decode()
        except CAError as exc:
            return exc.kind.value

    with ThreadPoolExecutor(len(tokens)) as pool:
        answers = list(pool.map(fetch, tokens))
    assert sum("PRIVATE KEY" in a for a in answers) == 1, answers
    assert set(a for a in answers if "PRIVATE KEY" not in a) == {"gone"}
    if not live_old_url:  # the superseded URL never wins
        assert not any("PRIVATE KEY" in a for a in answers[0::2])
    assert key_state(services)[0] == 0
