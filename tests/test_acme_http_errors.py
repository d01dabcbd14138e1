"""Errors that Flask itself raises under /acme/ (routing, body limits) and unexpected exceptions
answer RFC 8555 section 6.7 problems with a Replay-Nonce, never REST problems or HTML."""

from __future__ import annotations

import base64
import json

import pytest
from flask.testing import FlaskClient

from ca_service import Services

ERR = "urn:ietf:params:acme:error:"


def _acme_problem(response, status: int, acme_type: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["type"] == ERR + acme_type and body["status"] == status and body["detail"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert response.headers["Replay-Nonce"] and response.headers["Cache-Control"] == "no-store"
    assert 'rel="index"' in response.headers["Link"]
    return body  # type: ignore[no-any-return]


def test_method_not_allowed(client: FlaskClient) -> None:
    _acme_problem(client.get("/acme/new-order"), 405, "malformed")
    _acme_problem(client.put("/acme/new-account", data=b"{}"), 405, "malformed")


def test_unknown_acme_resource(client: FlaskClient) -> None:
    body = _acme_problem(client.post("/acme/no-such-thing"), 404, "malformed")
    assert "directory" in body["detail"]


def test_body_over_the_limit(client: FlaskClient) -> None:
    huge = b"{" + b" " * (70 * 1024) + b"}"
    body = _acme_problem(
        client.post("/acme/new-order", data=huge, content_type="application/jose+json"), 413, "malformed"
    )
    assert "65536" in body["detail"]


def test_unexpected_exception_is_server_internal(
    client: FlaskClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = client.application.extensions["ca_service"].acme

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a fault injected into the account store")

    monkeypatch.setattr(acme, "account", broken)  # the first database call of a kid request
    header = {
        "alg": "ES256",
        "kid": "http://ca.test/acme/acct/1",
        "nonce": "n",
        "url": "http://ca.test/acme/new-order",
    }
    protected = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    jws = {"protected": protected, "payload": "", "signature": "AA"}
    response = client.post("/acme/new-order", json=jws, content_type="application/jose+json")
    body = _acme_problem(response, 500, "serverInternal")
    assert body["request_id"] in body["detail"] and "injected" not in body["detail"]


def test_rest_errors_stay_rest(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert "Replay-Nonce" not in response.headers and not response.json["type"].startswith(ERR)
    wrong = client.delete("/ca/root.pem")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]


def test_host_header_changes_no_acme_url(client: FlaskClient) -> None:
    """URLs come from CA_SERVICE_PUBLIC_URL: a forged Host header shows up nowhere."""
    for path in ("/acme/directory", "/acme/new-nonce", "/acme/no-such-thing"):
        answer = client.get(path, headers={"Host": "evil.example:8443"})
        text = answer.get_data(as_text=True) + " ".join(f"{k}: {v}" for k, v in answer.headers.items())
        assert "evil.example" not in text and "ca.test" in text, path
    directory = client.get("/acme/directory", headers={"Host": "evil.example"}).json
    assert all(v.startswith("http://ca.test/acme/") for k, v in directory.items() if k != "meta")
