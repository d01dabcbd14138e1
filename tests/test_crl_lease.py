"""CRL publication that a dead worker cannot stop for long (design decision 10): two service
instances ("hosts", 2 gunicorn workers each) on one PostgreSQL. The worker that holds an issuer's
publication lease is frozen mid-build and killed with SIGKILL, or its whole instance gets SIGTERM;
the next revocation still appears in the CRL served by every live instance within 15 s."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from cryptography import x509
from sqlalchemy import select, text

from ca_service import Services
from ca_service.domain import Principal, Role
from ca_service.store.models import CrlRow
from tests.helpers import LiveServer, make_csr

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"], indirect=True)]

ADMIN = Principal(name="test-admin", role=Role.ADMIN)
FILLER = 60_000  # revoked rows that make a build last long enough to be caught holding the lease
WITHIN = 15  # seconds: the bound the issue sets for the next revocation to be published


@pytest.fixture
def hosts(services: Services, env_for: dict[str, str]) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {**env_for, "CA_SERVICE_CRL_COALESCE_MS": "50", "CA_SERVICE_CRL_CHECK_SECONDS": "2"}
    a, b = LiveServer(env), LiveServer(env)
    try:
        yield a.start(), b.start()
    finally:
        a.stop()
        b.stop()


def _fill(services: Services, issuer_id: int) -> None:
    """Many revoked certificates, straight into the table (their content does not matter)."""
    with services.db.write() as session:
        session.execute(
            text(
                "INSERT INTO certificates (serial, issuer_id, mac, profile, key_type, not_before, not_after,"
                " status, revoked_at, revocation_reason, fingerprint_sha256, der, created_by, created_at)"
                " SELECT lpad(to_hex(g), 40, '0'), :issuer, '7C2F80000000', 'device', 'ec-p256', now(),"
                " now() + interval '30 days', 'revoked', now(), 'superseded', md5(g::text), '\\x00',"
                " 'filler', now() FROM generate_series(1, :n) AS g"
            ),
            {"issuer": issuer_id, "n": FILLER},
        )


def _revoke_via(host: LiveServer, services: Services, tmp: Path, mac: str) -> int:
    """Issue a certificate (in-process) and revoke it through ``host``'s REST API: the worker
    that revokes wakes its publisher."""
    _, csr = make_csr(tmp, mac, name=mac)
    serial = services.enrollment.issue(csr.read_bytes(), ADMIN).serial
    admin = {"Authorization": f"Bearer {_admin_token(services)}"}
    r = requests.post(
        f"{host.url}/api/v1/certificates/{serial}/revoke",
        json={"reason": "superseded"},
        headers=admin,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return int(serial, 16)


_TOKENS: dict[str, str] = {}


def _admin_token(services: Services) -> str:
    """One admin token per test (keyed by its home: a later test's Services may reuse an id)."""
    from ca_service.enrollment.tokens import create_token

    key = str(services.settings.home)
    if key not in _TOKENS:
        _TOKENS[key] = create_token(services.db, name="lease-admin", role="admin")
    return _TOKENS[key]


def _holder(services: Services) -> tuple[int, str] | None:
    """(pid, owner) of the worker holding a live lease, if any."""
    issuer_id = services.directory.get().require_active().id  # the root CRL has a lease of its own
    with services.db.read() as session:
        row = session.execute(
            select(CrlRow.lease_owner, CrlRow.lease_until).where(CrlRow.issuer_id == issuer_id)
        ).first()
    if row is None or row[0] is None or row[1] is None or row[1] <= datetime.now(UTC):
        return None
    return int(row[0].split(":")[1]), row[0]


def _catch_holder(services: Services, tmp: Path, mac: str, hosts: tuple[LiveServer, ...]) -> int:
    """Revoke, poke the instances, and freeze (SIGSTOP) the worker that takes the lease while it
    still holds it; returns its pid."""
    for attempt in range(20):
        _revoke_via(hosts[attempt % len(hosts)], services, tmp, f"{mac[:-2]}{attempt:02d}")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            found = _holder(services)
            if found:
                pid, owner = found
                os.kill(pid, signal.SIGSTOP)
                if _holder(services) == (pid, owner):
                    return pid
                os.kill(pid, signal.SIGCONT)  # it finished just before: try again
            time.sleep(0.005)
    raise AssertionError("no worker was seen holding the CRL lease")


def _published_everywhere(serial: int, hosts: tuple[LiveServer, ...], issuer: str) -> bool:
    for host in hosts:
        response = requests.get(f"{host.url}/crl/{issuer}.crl", timeout=10)
        if response.status_code != 200:
            return False
        if x509.load_der_x509_crl(response.content).get_revoked_certificate_by_serial_number(serial) is None:
            return False
    return True


def _wait_published(serial: int, hosts: tuple[LiveServer, ...], issuer: str) -> float:
    """Seconds until every host serves a CRL listing ``serial`` (fails after WITHIN)."""
    start = time.monotonic()
    while not _published_everywhere(serial, hosts, issuer):
        assert time.monotonic() - start < WITHIN, f"serial {serial:X} not published within {WITHIN} s"
        time.sleep(0.2)
    return time.monotonic() - start


def test_killed_lease_holder_delays_publication_by_one_lease_at_most(
    services: Services, hosts: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    issuer = services.directory.get().require_active()
    _fill(services, issuer.id)
    services.revocation.publish_due()
    pid = _catch_holder(services, tmp_path, "7C2F80AA0000", hosts)
    os.kill(pid, signal.SIGKILL)  # frozen mid-build, then killed: its lease is never released
    serial = _revoke_via(hosts[1], services, tmp_path, "7C2F80BB0001")
    _wait_published(serial, hosts, issuer.name)


def test_sigterm_of_an_instance_mid_build_releases_its_lease(
    services: Services, hosts: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    issuer = services.directory.get().require_active()
    _fill(services, issuer.id)
    services.revocation.publish_due()
    a, b = hosts
    pid = _catch_holder(services, tmp_path, "7C2F80CC0000", hosts)
    os.kill(pid, signal.SIGCONT)  # let it run again, and stop its whole instance gracefully
    victim = a if _pid_in(a, pid) else b
    survivor = b if victim is a else a
    victim.stop()
    serial = _revoke_via(survivor, services, tmp_path, "7C2F80DD0001")
    _wait_published(serial, (survivor,), issuer.name)


def _pid_in(server: LiveServer, pid: int) -> bool:
    """Whether ``pid`` is a worker of ``server`` (a child of its gunicorn master)."""
    assert server.proc is not None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == server.proc.pid


def test_a_transaction_holding_the_crl_row_stalls_no_revocation(
    services: Services, hosts: tuple[LiveServer, LiveServer], tmp_path: Path, pg_url: str
) -> None:
    """Revoking transactions never wait for the per-issuer CRL row: with an outside session
    holding it locked, revocations and issuance on both hosts go on (the client's timeout would
    fire first otherwise), and the CRL catches up once the lock is gone."""
    import psycopg

    issuer = services.directory.get().require_active()
    services.revocation.publish_due()
    blocker = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        blocker.execute("SELECT * FROM crls FOR UPDATE")  # an open transaction holds the row
        serials = [
            _revoke_via(host, services, tmp_path, f"7C2F80EE00{i:02d}") for i, host in enumerate(hosts)
        ]
        _, csr = make_csr(tmp_path, "7C2F80EE0099", name="during")
        admin = {"Authorization": f"Bearer {_admin_token(services)}"}
        issued = requests.post(
            hosts[0].url + "/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin, timeout=5
        )
        assert issued.status_code == 201
    finally:
        blocker.rollback()
        blocker.close()
    for serial in serials:
        _wait_published(serial, hosts, issuer.name)
