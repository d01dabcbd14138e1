"""The key URL under gunicorn with several workers: concurrent fetches of one key URL get it
exactly once, and the access log does not record download tokens."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from ca_service.domain import SYSTEM
from ca_service.store.models import CertificateRow, DeviceCredentialRow, WrappedKeyRow
from tests.helpers import LiveServer

pytestmark = pytest.mark.slow


def test_key_url_once_under_concurrency(services: Any, env_for: dict[str, str]) -> None:
    delivery = services.credentials.create("7C2F80E0D605", SYSTEM)
    server = LiveServer({**env_for, "CA_SERVICE_ACCESS_LOG": "1"}, workers=2).start()
    try:
        key_path = delivery.key_url.removeprefix("http://ca.test")
        cert_path = delivery.certificate_url.removeprefix("http://ca.test")
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: requests.get(server.url + key_path, timeout=30), range(8)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] + [410] * 7, statuses
        assert sum(b"PRIVATE KEY" in a.content for a in answers) == 1
        key_pem = next(a.text for a in answers if a.status_code == 200)
        assert requests.get(server.url + cert_path, timeout=10).status_code == 200
    finally:
        server.stop()
    log = Path(server.log.name).read_text()
    assert "/provisioning/key/" in log  # the access log was on
    for url in (delivery.key_url, delivery.certificate_url):
        assert url.rsplit("/", 1)[1] not in log
    body = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    assert body and not any(line in log for line in body)


def test_concurrent_provisioning_steps_make_one_key(
    services: Any, env_for: dict[str, str], token: Any
) -> None:
    headers = token("provisioner", "7C2F80")
    server = LiveServer(env_for, workers=2).start()
    try:
        url = f"{server.url}/api/v1/devices/7C2F80E0D605/provisioning-step"
        with ThreadPoolExecutor(6) as pool:
            prepare = lambda _: requests.post(url, json={}, headers=headers, timeout=30)  # noqa: E731
            answers = list(pool.map(prepare, range(6)))
    finally:
        server.stop()
    # one request made the key; the others got that same delivery
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["key_url"] for a in answers}) == 1
    with services.db.read() as session:
        assert len(session.scalars(select(DeviceCredentialRow)).all()) == 1
        assert len(session.scalars(select(CertificateRow)).all()) == 1
        assert len(session.scalars(select(WrappedKeyRow)).all()) == 1
