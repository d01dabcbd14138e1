"""Issuance rate limits per API token, per ACME account and per device MAC: counted in the
database, answered 429 problem+json with Retry-After, on SQLite and PostgreSQL; across two
gunicorn workers the limit holds exactly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from ca_service import Services, create_app
from ca_service.clock import MovableClock
from ca_service.store.models import CertificateRow, RateCounterRow
from tests.helpers import LiveServer, cli, make_csr


def _count(services: Services, model: type) -> int:
    with services.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def limited(make_settings: Any, services: Services) -> Any:
    """A test client whose settings limit tokens to 2 per hour and MACs to 3 per day, on a
    movable clock; yields (client, clock, settings)."""
    settings = make_settings(rate_limit_token=2, rate_limit_mac=3)
    clock = MovableClock()
    app = create_app(settings, clock)
    yield app.test_client(), clock, settings
    app.extensions["ca_service"].db.dispose()


def _issue(client: Any, csr: Path, headers: dict[str, str]) -> Any:
    return client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=headers)


def test_token_limit_is_a_429_with_retry_after_and_signs_nothing(
    limited: Any, token: Any, services: Services, tmp_path: Path
) -> None:
    client, clock, _ = limited
    ops = token("admin", name="ops")
    _, one = make_csr(tmp_path, "7C2F80000001", name="one")
    _, two = make_csr(tmp_path, "7C2F80000002", name="two")
    assert _issue(client, one, ops).status_code == 201
    assert _issue(client, two, ops).status_code == 201
    refused = _issue(client, two, ops)
    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    body = refused.json
    assert body["type"] == "urn:ca-service:problem:rate-limited"
    assert body["detail"].startswith(
        "The API token 'ops' may be issued at most 2 certificate(s) per hour (rate_limit_token)"
    )
    retry = int(refused.headers["Retry-After"])
    assert 1 <= retry <= 3600 and body["retry_after"] == retry
    assert _count(services, CertificateRow) == 2  # the refusal committed nothing
    # another token is counted apart; the same token issues again in the next window
    assert _issue(client, two, token("admin")).status_code == 201
    clock.advance(retry)
    assert _issue(client, two, ops).status_code == 201


def test_mac_limit_counts_every_token_and_the_cli_path(
    limited: Any, token: Any, services: Services, tmp_path: Path
) -> None:
    client, _, settings = limited
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    for _ in range(3):
        assert _issue(client, csr, token("admin")).status_code == 201
    refused = _issue(client, csr, token("admin"))
    assert refused.status_code == 429
    assert refused.json["detail"].startswith(
        "Device 7C2F80C6E5C2 may be issued at most 3 certificate(s) per day (rate_limit_mac)"
    )
    _, other = make_csr(tmp_path, "7C2F80C6E5C3", name="other")
    assert _issue(client, other, token("admin")).status_code == 201  # another device
    # the offline path counts against the same limit
    from ca_service import build_services
    from ca_service.cli.base import actor
    from ca_service.errors import CAError, Kind

    offline = build_services(settings)
    try:
        with pytest.raises(CAError) as exc:
            offline.enrollment.issue(csr.read_bytes(), actor())
        assert exc.value.kind is Kind.RATE_LIMITED
    finally:
        offline.db.dispose()


def test_limits_are_off_by_default_and_ended_windows_are_deleted(
    client: Any, admin: dict[str, str], services: Services, make_settings: Any, tmp_path: Path
) -> None:
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    for _ in range(5):
        assert _issue(client, csr, admin).status_code == 201
    assert _count(services, RateCounterRow) == 0  # nothing counted while every limit is off
    clock = MovableClock()
    app = create_app(make_settings(rate_limit_mac=10, rate_limit_mac_window_seconds=60), clock)
    web = app.test_client()
    try:
        assert _issue(web, csr, admin).status_code == 201
        assert _count(services, RateCounterRow) == 1
        clock.advance(120)
        assert _issue(web, csr, admin).status_code == 201
        assert _count(services, RateCounterRow) == 1  # the ended window's row is gone
    finally:
        app.extensions["ca_service"].db.dispose()


@pytest.mark.slow  # gunicorn
def test_the_limit_holds_across_two_workers(
    services: Services, env_for: dict[str, str], tmp_path: Path
) -> None:
    """Eight concurrent issuances through two workers under a limit of three: exactly three
    certificates, five 429s (the counter row orders the issuing transactions)."""
    token = cli(env_for, "token", "create", "--role", "admin", "--name", "burst").stdout.strip()
    csrs = [make_csr(tmp_path, f"7C2F8000000{n}", name=f"d{n}")[1] for n in range(8)]
    server = LiveServer({**env_for, "CA_SERVICE_RATE_LIMIT_TOKEN": "3"}, workers=2).start()
    try:

        def one(csr: Path) -> requests.Response:
            return requests.post(
                server.url + "/api/v1/certificates",
                json={"csr": csr.read_text()},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(one, csrs))
    finally:
        server.stop()
    assert sorted(a.status_code for a in answers) == [201] * 3 + [429] * 5, [a.text for a in answers]
    assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 429)
    assert _count(services, CertificateRow) == 3
