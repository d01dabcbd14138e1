"""The service on every key store backend: issuer rotation, the issuer listing, and the faults of
a key store that cannot sign (503 problem, nothing written, /healthz not ready, recovery)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pkcs11 as p11
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ca_service import Services, build_services, create_app
from ca_service.clock import SYSTEM, Clock, MovableClock
from ca_service.config import Settings
from ca_service.enrollment.tokens import create_token
from ca_service.errors import CAError, Kind
from ca_service.issuers import lifecycle as ca_setup
from ca_service.issuers.signers import CANNOT_SIGN, MAX_BACKOFF
from ca_service.keystore.pkcs11 import session as pkcs11_session
from ca_service.store.models import AuditRow, CertificateRow
from tests.helpers import make_csr, openssl, self_signed
from tests.softhsm import Token


@dataclass
class Ca:
    settings: Settings
    services: Services
    client: FlaskClient
    admin: dict[str, str]
    key_uri: Callable[[str], str]
    clock: MovableClock

    def issue(self, tmp: Path, mac: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        _, csr = make_csr(tmp, mac, name=mac)
        response = self.client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=self.admin)
        return response.status_code, response.json

    def counts(self) -> tuple[int, int]:
        with self.services.db.read() as session:
            return (
                session.scalar(select(func.count()).select_from(CertificateRow)) or 0,
                session.scalar(select(func.count()).select_from(AuditRow)) or 0,
            )

    def new_worker(self, clock: Clock = SYSTEM) -> FlaskClient:
        """A freshly started worker (its own services, loading keys on first use)."""
        app = create_app(self.settings, clock)
        app.config["TESTING"] = True
        return app.test_client()


@pytest.fixture
def ca(make_settings: Callable[..., Settings], key_uri: Callable[[str], str]) -> Iterator[Ca]:
    """A CA whose root and issuing keys are both in the key store under test."""
    settings = make_settings(issuer_refresh_seconds=0)
    services = build_services(settings)
    ca_setup.initialize(
        services.db, settings, root_key_uri=key_uri("root"), issuing_key_uri=key_uri("issuing-1")
    )
    services.revocation.publish_due()  # the first CRL, as `ca-service init` publishes it
    clock = MovableClock()
    app = create_app(settings, clock)
    app.config["TESTING"] = True
    admin = {"Authorization": "Bearer " + create_token(services.db, name="admin", role="admin")}
    yield Ca(settings, services, app.test_client(), admin, key_uri, clock)
    app.extensions["ca_service"].db.dispose()
    services.db.dispose()


def _verify(tmp: Path, cert_pem: str, chain_pem: bytes, root_pem: bytes) -> None:
    (tmp / "leaf.pem").write_text(cert_pem)
    (tmp / "chain.pem").write_bytes(chain_pem)
    (tmp / "root.pem").write_bytes(root_pem)
    done = openssl(
        "verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "leaf.pem", cwd=tmp, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- rotation -------------------------------------------------------------------------------------
def test_rotation_new_issuer_signs_old_one_retires(ca: Ca, tmp_path: Path) -> None:
    status, first = ca.issue(tmp_path, "7C2F80000001")
    assert status == 201
    result = ca_setup.rotate(ca.services.db, ca.settings, key_uri=ca.key_uri("issuing-2"))
    assert result.retiring_name == first["issuer"] and result.csr_pem is None

    status, second = ca.issue(tmp_path, "7C2F80000002")  # the running worker picked up the rotation
    assert status == 201 and second["issuer"] == result.issuing_name
    chain = ca.client.get("/ca/chain.pem").data
    assert chain.count(b"BEGIN CERTIFICATE") == 3  # new issuing, retiring issuing, root
    root = ca.client.get("/ca/root.pem").data
    for cert in (first, second):
        _verify(tmp_path, cert["certificate_pem"], chain, root)
    assert ca.client.get("/ca/issuing.pem").data.decode() in second["chain_pem"]

    auditor = {"Authorization": "Bearer " + create_token(ca.services.db, name="aud", role="auditor")}
    listing = ca.client.get("/api/v1/issuers", headers=auditor)
    assert listing.status_code == 200
    states = {i["name"]: (i["role"], i["state"], i["certificates"]) for i in listing.json}
    assert states[first["issuer"]] == ("issuing", "retiring", 1)
    assert states[second["issuer"]] == ("issuing", "active", 1)
    by_name = {i["name"]: i for i in listing.json}
    assert by_name[second["issuer"]]["key_uri"] == ca.key_uri("issuing-2")
    assert by_name[second["issuer"]]["parent"] == next(n for n, s in states.items() if s[0] == "root")
    with ca.services.db.read() as session:
        audit = session.scalars(select(AuditRow).where(AuditRow.action == "ca.rotate")).one()
        assert audit.detail["previous"] == first["issuer"]

    # the retiring issuer retires once its last certificate has expired, not before
    assert ca_setup.retire_finished(ca.services.db) == []
    after = datetime.fromisoformat(first["not_after"]) + timedelta(seconds=1)
    assert ca_setup.retire_finished(ca.services.db, now=after) == [first["issuer"]]
    assert ca.client.get("/ca/chain.pem").data.count(b"BEGIN CERTIFICATE") == 2
    states = {i["name"]: i["state"] for i in ca.client.get("/api/v1/issuers", headers=auditor).json}
    assert states[first["issuer"]] == "retired"


def test_issuer_listing_needs_admin_or_auditor(ca: Ca) -> None:
    provisioner = {
        "Authorization": "Bearer "
        + create_token(ca.services.db, name="p", role="provisioner", scopes=("7C2F80",))
    }
    refused = ca.client.get("/api/v1/issuers", headers=provisioner)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert ca.client.get("/api/v1/issuers").status_code == 401
    assert [i["role"] for i in ca.client.get("/api/v1/issuers", headers=ca.admin).json] == ["root", "issuing"]


def test_rotation_refuses_a_second_pending_issuer(ca: Ca, tmp_path: Path) -> None:
    result = ca_setup.rotate(ca.services.db, ca.settings, key_uri=ca.key_uri("issuing-2"), csr_only=True)
    assert result.csr_pem and "BEGIN CERTIFICATE REQUEST" in result.csr_pem
    before = ca.counts()
    with pytest.raises(CAError, match="already waiting for its certificate") as refused:
        ca_setup.rotate(ca.services.db, ca.settings, key_uri=ca.key_uri("issuing-3"))
    assert refused.value.kind is Kind.CONFLICT
    assert ca.counts() == before
    status, cert = ca.issue(tmp_path, "7C2F80000003")  # the active issuer still signs
    assert status == 201 and cert["issuer"].startswith("issuing-") and cert["issuer"] != result.issuing_name


# -- faults ---------------------------------------------------------------------------------------
def _break(ca: Ca, kind: str, request: pytest.FixtureRequest) -> Callable[[], None]:
    """Make the key store unable to serve; return the repair."""
    if kind == "file":
        key = ca.settings.home / "keys" / "issuing-1.pem"
        away = key.with_name("moved-away.pem")
        key.rename(away)
        return lambda: away.rename(key)
    token: Token = request.getfixturevalue("hsm_token")
    token.detach()
    return token.attach


def test_worker_starting_without_its_key_store_is_not_ready_then_recovers(
    ca: Ca, keystore_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repair = _break(ca, keystore_kind, request)
    clock = MovableClock()
    worker = ca.new_worker(clock)
    health = worker.get("/healthz")
    assert health.status_code == 503
    assert health.json["checks"]["keystore"] == "The issuing key cannot sign; the service log says why."
    assert "issuing-1" not in health.get_data(as_text=True)  # public: no key names or paths
    assert health.json["checks"]["database"] == "ok"
    before = ca.counts()
    _, csr = make_csr(tmp_path, "7C2F80000004")
    refused = worker.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=ca.admin)
    assert refused.status_code == 503 and refused.mimetype == "application/problem+json"
    assert refused.json["type"] == "urn:ca-service:problem:unavailable"
    assert refused.headers["Retry-After"]
    assert ca.counts() == before  # nothing written: no certificate, no audit row

    repair()
    assert worker.get("/healthz").status_code == 503  # the key store is not asked again at once
    clock.advance(MAX_BACKOFF)  # after the back-off: the same worker, no restart
    assert worker.get("/healthz").status_code == 200
    ok = worker.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=ca.admin)
    assert ok.status_code == 201


FAULTS = ["session-closed", "token-detached", "token-reinitialised", "library-finalised"]


@pytest.mark.parametrize("keystore_kind", ["pkcs11"])
@pytest.mark.parametrize("fault", FAULTS)
def test_lost_pkcs11_session_is_a_503_then_reopened(
    ca: Ca, hsm_token: Token, tmp_path: Path, fault: str, keystore_kind: str
) -> None:
    status, _ = ca.issue(tmp_path, "7C2F80000010")
    assert status == 201  # the session is open and has signed
    hsm_token.backup()
    if fault == "session-closed":  # the token closed our session (e.g. HSM-side timeout)
        (link,) = [s for s in pkcs11_session.SESSIONS.values() if s.uri.token == hsm_token.label]
        link.session.close()
    elif fault == "token-detached":
        hsm_token.detach()
    elif fault == "token-reinitialised":
        hsm_token.reinitialise()
    else:  # the module was finalised under us (an HSM client library restart)
        p11.lib(hsm_token.hsm.module).finalize()

    before = ca.counts()
    status, problem = ca.issue(tmp_path, "7C2F80000011")
    assert status == 503, problem
    assert problem["type"] == "urn:ca-service:problem:unavailable"
    assert problem["detail"] == CANNOT_SIGN  # the key location and the reason go to the log only
    assert ca.counts() == before

    if fault in ("token-detached", "token-reinitialised"):  # still broken: not ready, with the reason
        health = ca.client.get("/healthz")
        assert health.status_code == 503 and health.json["checks"]["keystore"] != "ok"
        hsm_token.attach() if fault == "token-detached" else hsm_token.restore()
    ca.clock.advance(MAX_BACKOFF)  # the key store is asked again after its back-off
    status, cert = ca.issue(tmp_path, "7C2F80000012")
    assert status == 201, cert
    assert ca.client.get("/healthz").status_code == 200


# -- rotation under an external (offline) root ---------------------------------------------------
CA_EXTENSIONS = """basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _offline_sign(tmp: Path, csr_pem: str, name: str) -> bytes:
    """Sign an issuing CA CSR with the offline root, as an operator does with the openssl CLI."""
    (tmp / f"{name}.csr").write_text(csr_pem)
    (tmp / "ca.ext").write_text(CA_EXTENSIONS)
    openssl(
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial"),
        *("-days", "365", "-sha384", "-extfile", "ca.ext", "-out", f"{name}.pem"),
        cwd=tmp,
    )
    return (tmp / f"{name}.pem").read_bytes()


def test_rotation_under_an_external_root_goes_through_csr_and_import(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    self_signed(
        tmp_path / "root.key", tmp_path / "root.pem", "/O=Example/CN=Offline Root", curve="P-384", days=3650,
        ext=("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"),
    )  # fmt: skip
    root_pem = (tmp_path / "root.pem").read_bytes()
    settings = make_settings(issuer_refresh_seconds=0)
    services = build_services(settings)
    init = ca_setup.initialize(services.db, settings, csr_only=True)
    first = ca_setup.import_issuer(
        services.db, settings, _offline_sign(tmp_path, init.csr_pem or "", "issuing-1"), root_pem
    )
    app = create_app(settings)
    admin = {"Authorization": "Bearer " + create_token(services.db, name="admin", role="admin")}
    ca = Ca(settings, services, app.test_client(), admin, lambda n: f"file:keys/{n}.pem", MovableClock())
    status, a = ca.issue(tmp_path, "7C2F80000020")
    assert status == 201 and a["issuer"] == first

    rotation = ca_setup.rotate(services.db, settings)  # the root is external: a CSR, nothing active yet
    assert rotation.csr_pem and rotation.retiring_name is None
    assert ca.issue(tmp_path, "7C2F80000021")[1]["issuer"] == first
    second = ca_setup.import_issuer(
        services.db, settings, _offline_sign(tmp_path, rotation.csr_pem, "issuing-2"), root_pem
    )
    status, b = ca.issue(tmp_path, "7C2F80000022")
    assert status == 201 and b["issuer"] == second != first
    listing = {
        i["name"]: (i["role"], i["state"]) for i in ca.client.get("/api/v1/issuers", headers=admin).json
    }
    assert sorted(listing.values()) == [("issuing", "active"), ("issuing", "retiring"), ("root", "external")]
    chain = ca.client.get("/ca/chain.pem").data
    assert chain.count(b"BEGIN CERTIFICATE") == 3
    for cert in (a, b):
        _verify(tmp_path, cert["certificate_pem"], chain, root_pem)
    app.extensions["ca_service"].db.dispose()
    services.db.dispose()


def test_workers_check_for_a_rotation_cheaply_and_reload_only_on_change(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CA set is reloaded only when the stored set changed, and the check itself waits for
    ``issuer_refresh_seconds``."""
    from ca_service.issuers import directory

    settings = make_settings(issuer_refresh_seconds=0)
    services = build_services(settings)
    ca_setup.initialize(services.db, settings)
    loads = []
    real_load = directory.Snapshot.load
    monkeypatch.setattr(directory.Snapshot, "load", lambda records: loads.append(1) or real_load(records))
    first = services.directory.get().require_active().name
    for _ in range(5):
        assert services.directory.get().require_active().name == first
    assert len(loads) == 1
    ca_setup.rotate(services.db, settings)
    assert services.directory.get().require_active().name != first and len(loads) == 2

    slow = build_services(make_settings(issuer_refresh_seconds=3600))
    before = slow.directory.get().require_active().name
    ca_setup.rotate(services.db, settings)
    assert slow.directory.get().require_active().name == before  # not checked again yet
    slow.db.dispose()
    services.db.dispose()
