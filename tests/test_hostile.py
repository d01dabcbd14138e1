"""Hostile requests from the security audit (issue 13), one test each: the answer (status, problem
type) and that nothing was written (the row count of every table before and after), on SQLite
and PostgreSQL wherever storage is involved."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import runpy
import secrets
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import josepy as jose
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update

import ca_service
from ca_service import Services
from ca_service.authority.issuer import Issuer
from ca_service.bundle.inspect import GIGASET_NET, suggested_purpose
from ca_service.cli import main
from ca_service.cli.trust import OUT_OF_BAND
from ca_service.domain import MacAddress
from ca_service.enrollment.acme import LEGACY_EAB_CONTEXT, eab_context
from ca_service.errors import CAError, Kind
from ca_service.metrics import DOWNLOAD_PROBES
from ca_service.store import Database
from ca_service.store.models import (
    AcmeAccountRow,
    Base,
    CertificateRow,
    DownloadTokenRow,
    EabKeyRow,
    WrappedKeyRow,
    utcnow,
)
from tests.acme_helpers import acme_post, b64url, eab_binding

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
        path = re.sub(r"<int[:(][^>]+>", "1", rule.rule)
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


# -- body caps hold for chunked uploads -----------------------------------------------------
def chunked(client: FlaskClient, path: str, body: bytes, content_type: str, headers: dict[str, str]) -> Any:
    """POST ``body`` as a streamed (chunked) upload: no Content-Length, as gunicorn hands it on."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked", "Content-Type": content_type},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_uploads_past_the_cap_are_413(
    client: FlaskClient, admin: dict[str, str], services: Services
) -> None:
    warm_up(client)
    before = rows(services)
    rows_csv = b"mac\n" + b"".join(b"7C2F80%06X\n" % i for i in range(9 * 1024 * 1024 // 13 + 1))
    assert len(rows_csv) > services.settings.max_import_bytes
    body = problem(chunked(client, "/api/v1/device-imports", rows_csv, "text/csv", admin), 413)
    assert body["limit_bytes"] == services.settings.max_import_bytes
    big_json = b'{"csr": "' + b"A" * (services.settings.max_body_bytes + 10) + b'"}'
    body = problem(chunked(client, "/api/v1/certificates", big_json, "application/json", admin), 413)
    assert body["limit_bytes"] == services.settings.max_body_bytes
    acme = chunked(client, "/acme/new-order", big_json, "application/jose+json", {})
    assert acme.status_code == 413 and acme.json["type"] == "urn:ietf:params:acme:error:malformed"
    assert rows(services) == before
    # under the cap a chunked import is read whole
    small = chunked(client, "/api/v1/device-imports", b"mac\n7C2F80000001\n", "text/csv", admin)
    assert small.status_code == 200 and small.json["created"] == 1


# -- unauthenticated ACME requests write nothing -------------------------------------------
def test_acme_nonces_and_garbage_posts_write_nothing(client: FlaskClient, services: Services) -> None:
    warm_up(client)
    before = rows(services)
    for _ in range(5):
        assert client.head("/acme/new-nonce").status_code == 200
        assert client.get("/acme/new-nonce").status_code in (200, 204)
    garbage = [b"", b"{}", b"not json", b'{"protected": "x", "payload": "y", "signature": "z"}']
    for body in garbage:
        response = client.post("/acme/new-order", data=body, content_type="application/jose+json")
        assert response.status_code == 400 and response.json["type"].startswith("urn:ietf:params:acme:error:")
        assert response.headers["Replay-Nonce"]
    assert rows(services) == before


# -- ranges that used to be 500s --------------------------------------------------------------
EXTREMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("when", EXTREMES)
def test_expires_before_out_of_range_is_400(
    client: FlaskClient, admin: dict[str, str], services: Services, when: str
) -> None:
    before = rows(services)
    response = client.get(f"/api/v1/certificates?expires_before={quote(when)}", headers=admin)
    assert "outside the years 1 to 9999" in problem(response, 400, "malformed")["detail"]
    assert rows(services) == before


def _issued(client: FlaskClient, admin: dict[str, str]) -> dict[str, Any]:
    return delivery(client, admin)["certificate"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("when", "words"),
    [
        (EXTREMES[0], "outside the years 1 to 9999"),
        (EXTREMES[1], "outside the years 1 to 9999"),
        ("yesterday", "before certificate"),  # notBefore is now minus a few minutes
        ("2999-01-01T00:00:00Z", "may not be in the future"),
    ],
)
def test_bad_invalidity_dates_are_400(
    client: FlaskClient, admin: dict[str, str], services: Services, when: str, words: str
) -> None:
    cert = _issued(client, admin)
    if when == "yesterday":
        when = (utcnow() - timedelta(days=1)).isoformat()
    before = rows(services)
    for path in (f"/api/v1/certificates/{cert['serial']}/revoke", f"/api/v1/devices/{MAC}/revoke"):
        response = client.post(path, json={"reason": "keyCompromise", "invalidity_date": when}, headers=admin)
        assert words in problem(response, 400, "malformed")["detail"]
    assert rows(services) == before
    with services.db.read() as session:
        assert session.scalar(select(CertificateRow.status)) == "valid"


# -- pagination ---------------------------------------------------------------------------------
def test_renewals_due_and_device_certificates_are_paginated(
    client: FlaskClient, admin: dict[str, str], services: Services
) -> None:
    for _ in range(3):
        delivery(client, admin)
    due = client.get("/api/v1/renewals/due?days=3650&page_size=2", headers=admin)
    assert due.status_code == 200 and len(due.json) == 2
    assert json.loads(due.headers["X-Pagination"])["total"] == 3
    assert len(client.get("/api/v1/renewals/due?days=3650&page=2&page_size=2", headers=admin).json) == 1
    device = client.get(f"/api/v1/devices/{MAC}?page_size=2", headers=admin).json
    assert len(device["certificates"]) == 2 and device["certificates_total"] == 3
    last = client.get(f"/api/v1/devices/{MAC}?page=2&page_size=2", headers=admin).json["certificates"]
    assert len(last) == 1 and last[0]["serial"] not in {c["serial"] for c in device["certificates"]}
    problem(client.get(f"/api/v1/devices/{MAC}?page_size=1000", headers=admin), 422)


# -- public endpoints that sign -----------------------------------------------------------------
def test_healthz_does_not_sign_on_every_request(
    client: FlaskClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed: list[str] = []
    real = Issuer.self_test

    def counting(issuer: Issuer) -> None:
        signed.append(issuer.name)
        real(issuer)

    monkeypatch.setattr(Issuer, "self_test", counting)
    before = rows(services)
    for _ in range(20):
        assert client.get("/healthz").json["checks"]["keystore"] == "ok"
    assert len(signed) == 1
    assert rows(services) == before


def _ocsp_request(client: FlaskClient, admin: dict[str, str], nonce: bytes) -> bytes:
    cert = _issued(client, admin)
    leaf = x509.load_pem_x509_certificate(cert["certificate_pem"].encode())
    issuer = x509.load_pem_x509_certificate(cert["chain_pem"].encode())
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256())
    builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(("size", "ok"), [(60_000, False), (33, False), (32, True), (1, True)])
def test_ocsp_nonce_length_is_1_to_32_octets(
    client: FlaskClient, admin: dict[str, str], services: Services, size: int, ok: bool
) -> None:
    request = _ocsp_request(client, admin, b"n" * size)
    before = rows(services)
    answer = client.post("/ocsp", data=request, content_type="application/ocsp-request")
    assert answer.status_code == (200 if ok else 400)
    parsed = ocsp.load_der_ocsp_response(answer.data)
    if ok:
        assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * size
    else:
        assert parsed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        assert b"n" * 33 not in answer.data
    assert rows(services) == before


# -- secrets in output and logs -------------------------------------------------------------
def test_config_masks_the_database_password(tmp_path: Path) -> None:
    env = {
        "CA_SERVICE_HOME": str(tmp_path),
        "CA_SERVICE_DATABASE_URL": "postgresql://ca:hunter2-Secret@db.example:5432/ca?password=also-Secret",
        "CA_SERVICE_KEY_PASSPHRASE": "correct horse battery staple, quite long",
    }
    shown = CliRunner().invoke(main, ["config"], env=env, catch_exceptions=False)
    assert shown.exit_code == 0
    assert "Secret" not in shown.output and "horse" not in shown.output
    dumped = json.loads(shown.output)
    assert (
        dumped["database_url"] == "postgresql+psycopg://ca:***@db.example:5432/ca?password=***"
    )  # the driver used
    assert dumped["key_passphrase"].startswith("(set")  # where from, never the value


def test_engines_hide_statement_parameters(services: Services) -> None:
    secret = "topsecret-" + secrets.token_hex(8)
    with pytest.raises(Exception) as failed, services.db.read() as session:
        session.execute(text("SELECT * FROM no_such_table WHERE x = :p"), {"p": secret})
    chain = [failed.value, failed.value.__cause__]
    assert all(secret not in str(e) for e in chain if e is not None)
    assert services.db.engine.hide_parameters and services.db.write_engine.hide_parameters


def test_sqlite_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    stale = home / "ca.db"
    stale.touch(mode=0o644)
    previous = os.umask(0o022)
    try:
        db = Database(f"sqlite:///{stale}")
        with db.write() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            session.execute(text("INSERT INTO t VALUES (1)"))
        files = [stale, home / "ca.db-wal", home / "ca.db-shm"]
        assert all(f.exists() for f in files)
        assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
        db.dispose()
        fresh = home / "new.db"
        Database(f"sqlite:///{fresh}").dispose()
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    finally:
        os.umask(previous)


# -- EAB HMAC keys are bound to their kid -----------------------------------------------------
def test_eab_keys_open_only_in_their_own_row(services: Services) -> None:
    kid_a, key_a = services.acme.create_eab("platform-a", ("7C2F80",))
    kid_b, _ = services.acme.create_eab("platform-b", ("589EC6",))
    assert services.acme.eab_key(kid_a).hmac_key == b64url(key_a)
    with services.db.write() as session:  # a sealed key copied into another row does not open there
        sealed_a = session.scalar(select(EabKeyRow.hmac_key).where(EabKeyRow.kid == kid_a))
        session.execute(update(EabKeyRow).where(EabKeyRow.kid == kid_b).values(hmac_key=sealed_a))
    with pytest.raises(CAError) as refused:
        services.acme.eab_key(kid_b)
    assert refused.value.kind is Kind.INTERNAL


def test_eab_keys_sealed_the_old_way_still_open_and_are_resealed(services: Services) -> None:
    kid, key = services.acme.create_eab("platform-old", ("7C2F80",))
    wrapping = services.credentials.wrapping_key()
    with services.db.write() as session:  # as a key made before the binding was stored
        session.execute(update(EabKeyRow).values(hmac_key=wrapping.wrap(b64url(key), LEGACY_EAB_CONTEXT)))
    assert services.acme.eab_key(kid).hmac_key == b64url(key)
    assert services.acme.reseal_eab_keys() == 1
    assert services.acme.reseal_eab_keys() == 0
    with services.db.read() as session:
        sealed = session.scalar(select(EabKeyRow.hmac_key))
    assert wrapping.unwrap(sealed, eab_context(kid)) == b64url(key)


# -- MAC spellings: ASCII hex digits and the documented separators only ------------------------
@pytest.mark.parametrize(
    "mac",
    [
        "\ufb002F80E0D605",
        "7C2F80E0D605\u00a0",
        "\u000b7C2F80E0D605",
        "7C2F80E0D6\u00a005",
        "7C 2F 80 E0 D6 05",
        "7C2F80E0D6\u0660\u0665",
        "\uff17C2F80E0D605",
    ],
    ids=["ligature", "nbsp-after", "vertical-tab", "nbsp-inside", "spaces", "arabic-digits", "fullwidth"],
)
def test_macs_with_lookalike_characters_are_refused(
    client: FlaskClient, admin: dict[str, str], services: Services, mac: str
) -> None:
    before = rows(services)
    response = client.post("/api/v1/devices", json={"mac": mac}, headers=admin)
    problem(response, 422, "bad-identifier")
    assert rows(services) == before
    for spelling in ("7c:2f:80:e0:d6:05", " 7C-2F-80-E0-D6-05\n", "\t7c2f.80e0.d605"):
        assert MacAddress.parse(spelling).value == MAC


# -- ACME contact: mailto only ------------------------------------------------------------------
def test_forged_acme_requests_do_not_spend_a_nonce(client: FlaskClient, services: Services) -> None:
    """The signature is verified before the nonce is redeemed: a forged POST (a valid nonce, a
    signature by another key) writes nothing, and the nonce still works for its owner."""
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    made = acme_post(client, "new-account", {"externalAccountBinding": eab_binding(services, key)}, key)
    assert made.status_code == 201, made.json
    account_url = made.headers["Location"]
    order = {"identifiers": [{"type": "permanent-identifier", "value": MAC}]}
    nonce = client.head("/acme/new-nonce").headers["Replay-Nonce"]
    before = rows(services)
    forger = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    for attempt in (
        {"signer": forger, "kid": account_url},  # another key, this account's kid
        {"signer": forger},  # jwk of the forger's own, on a kid-only resource
        {"signer": forger, "kid": "http://ca.test/acme/acct/999999"},
    ):
        forged = acme_post(client, "new-order", order, key, nonce=nonce, **attempt)
        assert (
            forged.status_code in (400, 403) and forged.json["type"] != "urn:ietf:params:acme:error:badNonce"
        )
    assert rows(services) == before
    real = acme_post(client, "new-order", order, key, nonce=nonce, kid=account_url)
    assert real.status_code == 201, real.json


@pytest.mark.parametrize(
    "contact",
    [
        ["javascript:alert(1)"],
        ["mailto:a@example.com?body=x"],
        ["mailto:a@example.com,b@example.com"],
        ["https://example.com"],
        ["mailto:"],
        ["mailto:ops@example.com"] * 9,
        "mailto:ops@example.com",
    ],
)
def test_acme_contacts_are_mailto_only(client: FlaskClient, services: Services, contact: Any) -> None:
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    eab = eab_binding(services, key)
    warm_up(client)
    before = rows(services)
    refused = acme_post(client, "new-account", {"contact": contact, "externalAccountBinding": eab}, key)
    assert refused.status_code == 400 and refused.json["type"] == "urn:ietf:params:acme:error:invalidContact"
    assert rows(services) == before | {"acme_nonces": before["acme_nonces"] + 1}  # the redeemed nonce
    made = acme_post(
        client, "new-account", {"contact": ["mailto:ops@example.com"], "externalAccountBinding": eab}, key
    )
    assert made.status_code == 201, made.json
    account_url = made.headers["Location"]
    path = account_url.removeprefix("http://ca.test/acme/")
    update_refused = acme_post(client, path, {"contact": contact}, key, kid=account_url)
    assert update_refused.json["type"] == "urn:ietf:params:acme:error:invalidContact"
    with services.db.read() as session:
        assert session.scalar(select(AcmeAccountRow.contact)) == ["mailto:ops@example.com"]


# -- foreign data in CLI output ----------------------------------------------------------------
HOSTILE_NAME = "evil\x1b]0;owned\x07\r\x1b[2KGigaset.net\u202e"


def test_cli_output_escapes_control_characters_of_foreign_data(
    services: Services, env_for: dict[str, str], tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_NAME)])
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "hostile.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    runner = CliRunner()
    added = runner.invoke(
        main, ["trust", "add", str(pem), "--purpose", "other", "--label", "hostile subject"], env=env_for
    )
    listed = runner.invoke(main, ["trust", "list"], env=env_for)
    inspected = runner.invoke(main, ["inspect", str(pem)], env=env_for)
    for result in (added, listed, inspected):
        assert result.exit_code == 0, result.output
        assert not any(c in result.output for c in "\x1b\x07\r\u202e"), result.output
    assert "subject:     CN=evil\\x1b]0\\;owned\\x07\\r\\x1b[2KGigaset.net\\u202e" in inspected.output
    assert listed.output.startswith("ID  PURPOSE  LABEL")  # a table with its header row


def test_capture_suggestion_says_names_can_be_faked() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "7C2F80E0D605")])
    now = utcnow()
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(GIGASET_NET)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert "the names suggest that purpose" in suggested_purpose([leaf])
    assert "out of band" in OUT_OF_BAND and "fingerprints" in OUT_OF_BAND


def test_import_report_neutralises_formulas(
    services: Services, env_for: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "devices.csv"
    source.write_text(
        'mac,model\n=HYPERLINK("http://x.example","click"),N870\n+1+2,N870\n@SUM(A1),N870\n7C2F80E0D605,N870\n'
    )
    report = tmp_path / "rejected.csv"
    result = CliRunner().invoke(
        main, ["devices", "import", str(source), "--report", str(report)], env=env_for
    )
    assert result.exit_code == 2, result.output
    with report.open(newline="") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells), cells
    assert '\'=HYPERLINK("http://x.example"' in " ".join(cells)


# -- the remaining lows: an anchor id past BIGINT, RSA e = 3, inspection outside one's scope ---------
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_anchor_id_past_bigint_is_404(
    client: FlaskClient, admin: dict[str, str], services: Services, method: str
) -> None:
    before = rows(services)
    response = client.open("/api/v1/trust/anchors/9223372036854775808", method=method, headers=admin)
    assert "no such resource" in problem(response, 404)["detail"]
    assert rows(services) == before


def test_rsa_public_exponent_3_is_refused(
    client: FlaskClient, admin: dict[str, str], services: Services
) -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MAC)]))
        .sign(key, hashes.SHA256())
    )
    before = rows(services)
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    response = client.post("/api/v1/certificates", json={"csr": pem}, headers=admin)
    detail = problem(response, 422, "bad-key")["detail"]
    assert "public exponent 3 are refused" in detail and "must be 65537" in detail
    assert rows(services) == before


def test_inspection_shows_our_record_only_within_the_scope(
    client: FlaskClient, admin: dict[str, str], token: Any, services: Services
) -> None:
    cert = _issued(client, admin)
    revoked = client.post(
        f"/api/v1/certificates/{cert['serial']}/revoke", json={"reason": "superseded"}, headers=admin
    )
    assert revoked.status_code == 200
    outsider, insider = token("provisioner", "589EC6"), token("provisioner", MAC[:6])
    seen = {
        who: client.post(
            "/api/v1/inspect",
            data=cert["certificate_pem"],
            headers={**h, "Content-Type": "application/x-pem-file"},
        )
        for who, h in (("outsider", outsider), ("insider", insider))
    }
    assert seen["insider"].json["ours"]["status"] == "revoked"
    hidden = seen["outsider"].json
    assert hidden["ours"] == {"serial": cert["serial"], "known": None}
    assert "revoked" not in json.dumps(hidden).lower().replace("revoked_by", "")
