"""The trust bundle: import/retire anchors over REST, the PEM and JSON bundle, openssl verify."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ca_service.store.models import AuditRow, TrustAnchorRow, TrustBundleVersionRow
from tests.trust_helpers import (
    VECTORS,
    days,
    import_gigaset_anchors,
    issue_ours,
    make_ca_pem,
    vector,
    verifies,
)


def fetch_bundle(client: FlaskClient, tmp: Path, query: str = "") -> Path:
    response = client.get("/trust/bundle.pem" + query)
    assert response.status_code == 200, response.data
    path = tmp / f"bundle-{abs(hash(query))}.pem"
    path.write_bytes(response.data)
    return path


def test_bundle_accepts_every_generation_and_refuses_the_unlisted(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path
) -> None:
    import_gigaset_anchors(client, admin)
    ours, _, _ = issue_ours(client, admin, tmp_path)
    bundle = fetch_bundle(client, tmp_path)
    for name in ("factory-einstein2.pem", "factory-mac.pem", "factory-sha1.pem", "technologies-p256.pem"):
        assert verifies(bundle, vector(name)), name
    assert verifies(bundle, ours)
    assert not verifies(bundle, vector("unlisted-device.pem"))
    # without the bundle the same files are refused: the test can fail
    only_ours = fetch_bundle(client, tmp_path, "?purpose=private")
    assert verifies(only_ours, ours)
    assert not verifies(only_ours, vector("factory-mac.pem"))
    assert not verifies(only_ours, vector("technologies-p256.pem"))


@pytest.mark.parametrize(
    ("firmware", "accepted"),
    [
        ("2.56", {"factory-einstein2.pem", "factory-mac.pem", "ours"}),
        ("2.59", {"factory-einstein2.pem", "factory-mac.pem", "ours"}),
        ("83.V2.60.3", {"factory-einstein2.pem", "factory-mac.pem", "ours"}),
        ("2.61", {"technologies-p256.pem", "ours"}),
        ("83.V2.65.0%2Bbuild.8504c90", {"technologies-p256.pem", "ours"}),
    ],
)
def test_firmware_bundles_accept_exactly_the_right_ones(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path, firmware: str, accepted: set[str]
) -> None:
    import_gigaset_anchors(client, admin)
    ours, _, _ = issue_ours(client, admin, tmp_path)
    bundle = fetch_bundle(client, tmp_path, f"?firmware={firmware}")
    candidates = {
        "factory-einstein2.pem": vector("factory-einstein2.pem"),
        "factory-mac.pem": vector("factory-mac.pem"),
        "technologies-p256.pem": vector("technologies-p256.pem"),
        "unlisted-device.pem": vector("unlisted-device.pem"),
        "ours": ours,
    }
    got = {name for name, path in candidates.items() if verifies(bundle, path)}
    assert got == accepted


def test_bundle_format_etag_and_version(client: FlaskClient, admin: dict[str, str], services) -> None:
    first = client.get("/trust/bundle.json")
    assert first.status_code == 200
    v1 = first.json["version"]
    assert [c["purpose"] for c in first.json["certificates"]] == ["private", "private"]
    anchors = import_gigaset_anchors(client, admin)
    pem = client.get("/trust/bundle.pem")
    text = pem.data.decode()
    assert pem.mimetype == "application/x-pem-file"
    assert pem.headers["Cache-Control"] == "public, max-age=300"
    etag = pem.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{64}"', etag)  # strong: no W/ prefix
    assert text.count("-----BEGIN CERTIFICATE-----") == 5
    # stable order: factory, technologies (by subject), then ours; a comment block above each
    labels = re.findall(r"^# (.+) \((gigaset-factory|gigaset-technologies|other|private)\)$", text, re.M)
    assert [p for _, p in labels] == ["gigaset-factory", "gigaset-technologies", "gigaset-technologies"] + [
        "private"
    ] * 2
    assert labels[0][0] == "Gigaset.net (factory)"
    fp = anchors[0]["fingerprint_sha256"]
    assert f"# sha256: {fp}\n# expires: 2046-" in text
    assert client.get("/trust/bundle.pem").data == pem.data  # same content, same bytes
    again = client.get("/trust/bundle.pem", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert client.get("/trust/bundle.pem", headers={"If-None-Match": '"other"'}).status_code == 200
    document = client.get("/trust/bundle.json")
    assert document.json["version"] == v1 + 3  # one per import
    assert document.json["count"] == 5 and document.json["expiring_within_90_days"] == 0
    assert (
        client.get("/trust/bundle.json", headers={"If-None-Match": document.headers["ETag"]}).status_code
        == 304
    )
    # retire: leaves the bundle, the version grows, the history stays
    gone = client.delete(f"/api/v1/trust/anchors/{anchors[0]['id']}", headers=admin)
    assert gone.status_code == 200 and gone.json["retired_at"]
    after = client.get("/trust/bundle.json").json
    assert after["version"] == v1 + 4 and after["count"] == 4
    assert client.get("/trust/bundle.pem", headers={"If-None-Match": etag}).status_code == 200
    assert client.delete(f"/api/v1/trust/anchors/{anchors[0]['id']}", headers=admin).status_code == 409
    listed = client.get("/api/v1/trust/anchors", headers=admin).json
    assert [a["id"] for a in listed] == [anchors[1]["id"], anchors[2]["id"]]
    history = client.get("/api/v1/trust/anchors?include_retired=true", headers=admin).json
    assert len(history) == 3
    # a re-import of the retired certificate is allowed and is a new row
    again = client.post(
        "/api/v1/trust/anchors",
        json={
            "pem": vector("gigaset-net-ca.pem").read_text(),
            "purpose": "gigaset-factory",
            "label": "again",
        },
        headers=admin,
    )
    assert again.status_code == 201 and again.json["id"] != anchors[0]["id"]
    with services.db.read() as session:
        actions = session.scalars(select(AuditRow.action).where(AuditRow.action.like("trust.%"))).all()
        assert sorted(actions) == ["trust.anchor.add"] * 4 + ["trust.anchor.retire"]
        versions = session.scalars(
            select(TrustBundleVersionRow.version).order_by(TrustBundleVersionRow.version)
        )
        assert list(versions) == list(range(1, v1 + 6))


def test_purpose_filter_and_readers(client: FlaskClient, admin: dict[str, str], token) -> None:
    import_gigaset_anchors(client, admin)
    factory = client.get("/trust/bundle.json?purpose=gigaset-factory,private").json
    assert [c["purpose"] for c in factory["certificates"]] == ["gigaset-factory", "private", "private"]
    assert factory["filter"]["purposes"] == ["gigaset-factory", "private"]
    bad = client.get("/trust/bundle.pem?purpose=gigaset")
    assert bad.status_code == 400 and bad.mimetype == "application/problem+json"
    assert "gigaset-factory, gigaset-technologies, other, private" in bad.json["detail"]
    assert client.get("/trust/bundle.pem?firmware=two").status_code == 400
    auditor = token("auditor")
    assert len(client.get("/api/v1/trust/anchors", headers=auditor).json) == 3
    one = client.get("/api/v1/trust/anchors/1", headers=auditor)
    assert one.status_code == 200 and one.json["pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert client.get("/api/v1/trust/anchors/999", headers=auditor).status_code == 404
    assert client.delete("/api/v1/trust/anchors/1", headers=auditor).status_code == 403
    assert client.get("/api/v1/trust/anchors").status_code == 401


def test_raw_der_upload_and_warnings(client: FlaskClient, admin: dict[str, str], tmp_path: Path) -> None:
    from tests.helpers import openssl

    der = openssl("x509", "-in", str(vector("gigaset-tech-device-ca.pem")), "-outform", "DER").stdout
    response = client.post(
        "/api/v1/trust/anchors?purpose=gigaset-technologies&label=device%20CA",
        data=der,
        headers={**admin, "Content-Type": "application/pkix-cert"},
    )
    assert response.status_code == 201, response.json
    assert response.json["label"] == "device CA"
    # an intermediate without its root in the bundle is accepted with a warning
    assert any("Not a root" in w for w in response.json["warnings"])
    assert response.headers["Location"] == f"/api/v1/trust/anchors/{response.json['id']}"


def test_expiring_anchor_is_flagged(client: FlaskClient, admin: dict[str, str]) -> None:
    soon = make_ca_pem("Expiring Soon CA", days(-10), days(30))
    response = client.post(
        "/api/v1/trust/anchors", json={"pem": soon, "purpose": "other", "label": "soon"}, headers=admin
    )
    assert response.status_code == 201 and response.json["expires_within_90_days"]
    assert any("Expires within 90 days" in w for w in response.json["warnings"])
    document = client.get("/trust/bundle.json").json
    assert document["expiring_within_90_days"] == 1
    flagged = [c for c in document["certificates"] if c["expires_within_90_days"]]
    assert [c["label"] for c in flagged] == ["soon"]
    health = client.get("/healthz").json
    assert health["details"]["trust_anchors_expiring_within_90_days"] == 1
    assert health["details"]["trust_anchors_expiring"][0]["label"] == "soon"
    metrics = client.get("/metrics").data.decode()
    assert "\nca_trust_anchors_expiring 1.0\n" in metrics


def _counts(services) -> tuple[int, int, int]:
    with services.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(TrustAnchorRow)),
            session.scalar(select(func.count()).select_from(TrustBundleVersionRow)),
            session.scalar(select(func.count()).select_from(AuditRow)),
        )


@pytest.mark.parametrize(
    ("case", "status", "type_", "detail"),
    [
        ("leaf", 422, "bad-certificate", "is not a CA certificate"),
        ("expired", 422, "bad-certificate", "expired on"),
        ("not-yet-valid", 422, "bad-certificate", "is not valid before"),
        ("garbage", 400, "malformed", "No X.509 certificate could be read"),
        ("garbage-pem", 400, "malformed", "No X.509 certificate could be read"),
        ("two", 400, "malformed", "Send one CA certificate per import"),
        ("purpose", 400, "malformed", "Unknown purpose 'private'"),
        ("no-label", 400, "malformed", "needs a purpose"),
        ("ours", 409, "conflict", "this service's own CAs"),
        ("huge", 413, None, "larger than the limit of 65536 bytes"),
        ("huge-json", 413, None, "larger than the limit of 65536 bytes"),
    ],
)
def test_bad_imports_store_nothing(
    client: FlaskClient,
    admin: dict[str, str],
    services,
    case: str,
    status: int,
    type_: str | None,
    detail: str,
) -> None:
    client.get("/trust/bundle.json")  # records the first version
    before = _counts(services)
    ca = vector("gigaset-net-ca.pem").read_text()
    bodies = {
        "leaf": {"pem": vector("factory-mac.pem").read_text()},
        "expired": {"pem": make_ca_pem("Old CA", days(-800), days(-1))},
        "not-yet-valid": {"pem": make_ca_pem("Future CA", days(5), days(800))},
        "garbage": None,
        "garbage-pem": {"pem": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"},
        "two": {"pem": ca + vector("unlisted-ca.pem").read_text()},
        "purpose": {"pem": ca, "purpose": "private"},
        "no-label": {"pem": ca, "label": ""},
        "ours": {"pem": client.get("/ca/root.pem").data.decode()},
        "huge": None,
        "huge-json": {"pem": "A" * 10 * 1024 * 1024},
    }
    body = bodies[case]
    if case == "garbage":
        response = client.post(
            "/api/v1/trust/anchors?purpose=other&label=x",
            data=b"\x00\x01garbage" * 100,
            headers={**admin, "Content-Type": "application/octet-stream"},
        )
    elif case == "huge":
        response = client.post(
            "/api/v1/trust/anchors?purpose=other&label=x",
            data=b"0" * (10 * 1024 * 1024),
            headers={**admin, "Content-Type": "application/octet-stream"},
        )
    else:
        payload = {"purpose": "other", "label": "x", **body}
        if case == "no-label":
            payload["label"] = ""
        response = client.post("/api/v1/trust/anchors", json=payload, headers=admin)
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    if type_:
        assert response.json["type"] == f"urn:ca-service:problem:{type_}"
    assert detail in response.json["detail"]
    assert _counts(services) == before


def test_duplicate_and_role_refusals(client: FlaskClient, admin: dict[str, str], token, services) -> None:
    body = {"pem": vector("gigaset-net-ca.pem").read_text(), "purpose": "gigaset-factory", "label": "a"}
    assert client.post("/api/v1/trust/anchors", json=body, headers=admin).status_code == 201
    others = [token("auditor"), token("provisioner", "7C2F80")]
    before = _counts(services)
    dup = client.post("/api/v1/trust/anchors", json=body, headers=admin)
    assert dup.status_code == 409 and "already an active anchor" in dup.json["detail"]
    for headers in others:
        refused = client.post("/api/v1/trust/anchors", json=body, headers=headers)
        assert refused.status_code == 403 and "role admin" in refused.json["detail"]
    assert _counts(services) == before


def test_vectors_readme_names_every_file() -> None:
    readme = (VECTORS / "README.md").read_text()
    for path in VECTORS.glob("*.pem"):
        assert path.name in readme, path.name


def test_concurrent_imports_get_distinct_growing_versions(services, settings) -> None:
    """Two workers (own Services, own engines) import at the same time: every change gets its own
    version, the versions have no gaps, and the database refuses a reused number."""
    import threading

    from sqlalchemy.exc import IntegrityError

    from ca_service import build_services
    from ca_service.domain import SYSTEM
    from ca_service.store import trust

    workers = [build_services(settings) for _ in range(2)]
    pems = [make_ca_pem(f"Concurrent CA {i}", days(-1), days(900)) for i in range(10)]
    errors: list[Exception] = []

    def work(svc, chunk: list[str]) -> None:
        try:
            for i, pem in enumerate(chunk):
                svc.bundle.add(pem, "other", f"ca {i}", SYSTEM)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w, pems[i::2])) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in workers:
        w.db.dispose()
    assert errors == []
    with services.db.read() as session:
        added = session.scalars(select(AuditRow.detail).where(AuditRow.action == "trust.anchor.add")).all()
        versions = sorted(d["bundle_version"] for d in added)
        assert len(set(versions)) == 10
        stored = list(
            session.scalars(select(TrustBundleVersionRow.version).order_by(TrustBundleVersionRow.version))
        )
        assert stored == list(range(1, len(stored) + 1)) and stored[-1] == versions[-1]
    with pytest.raises(IntegrityError), services.db.write() as session:
        trust.add_version(session, versions[-1], "0" * 64, "reused number")


def test_roots_only_form(client: FlaskClient, admin: dict[str, str], tmp_path: Path) -> None:
    """``anchors=roots``: only self-signed CAs are anchors; our issuing CA (and an imported
    intermediate) must come as an untrusted intermediate, so its revocation can be checked."""
    import_gigaset_anchors(client, admin)
    everything = client.get("/trust/bundle.json").json
    roots = client.get("/trust/bundle.json?anchors=roots").json
    assert roots["filter"]["anchors"] == "roots" and everything["filter"]["anchors"] == "all"
    assert roots["version"] == everything["version"]
    labels = {c["label"] for c in roots["certificates"]}
    assert labels == {"Gigaset.net (factory)", "Gigaset Technologies root", "ca-service root CA"}, labels
    assert everything["count"] == 5 and roots["count"] == 3
    pem = client.get("/trust/bundle.pem?anchors=roots")
    assert pem.data.decode().count("BEGIN CERTIFICATE") == 3 and "root CAs only" in pem.data.decode()
    assert pem.headers["ETag"] != client.get("/trust/bundle.pem").headers["ETag"]
    cert, _, _ = issue_ours(client, admin, tmp_path)
    bundle = fetch_bundle(client, tmp_path, "?anchors=roots")
    assert not verifies(bundle, cert)  # the issuing CA is no anchor any more
    issuing = tmp_path / "issuing.pem"
    issuing.write_bytes(client.get("/ca/issuing.pem").data)
    from tests.helpers import openssl

    ok = openssl("verify", "-CAfile", str(bundle), "-untrusted", str(issuing), str(cert), check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert verifies(fetch_bundle(client, tmp_path), cert)  # today's form: the issuing CA is an anchor
    bad = client.get("/trust/bundle.pem?anchors=intermediates")
    assert bad.status_code in (400, 422) and bad.mimetype == "application/problem+json"


def test_rendered_once_per_version_and_form(
    client: FlaskClient, admin: dict[str, str], app, monkeypatch
) -> None:
    """A bundle form is rendered once per version; 200s and 304s after it render nothing; an
    anchor change made through this worker shows at once."""
    services = app.extensions["ca_service"]  # the app's own (one worker)
    renders: list[tuple[object, ...]] = []
    real = services.bundle._publish_with_state

    def counting(*args):  # type: ignore[no-untyped-def]
        renders.append(args)
        return real(*args)

    monkeypatch.setattr(services.bundle, "_publish_with_state", counting)
    first = client.get("/trust/bundle.pem")
    etag = first.headers["ETag"]
    for _ in range(3):
        assert client.get("/trust/bundle.pem").data == first.data
        assert client.get("/trust/bundle.pem", headers={"If-None-Match": etag}).status_code == 304
    assert len(renders) == 1
    client.get("/trust/bundle.json")
    client.get("/trust/bundle.pem?anchors=roots")
    client.get("/trust/bundle.pem?anchors=roots")
    assert len(renders) == 3  # one per form
    import_gigaset_anchors(client, admin)
    changed = client.get("/trust/bundle.pem")
    assert changed.headers["ETag"] != etag and changed.data.count(b"BEGIN CERTIFICATE") == 5
    assert client.get("/trust/bundle.pem", headers={"If-None-Match": etag}).status_code == 200
    assert len(renders) == 4


def test_served_from_memory_while_the_database_is_away(client: FlaskClient, app, monkeypatch) -> None:
    """A form this worker rendered is served while the database cannot answer; one it never
    rendered is a 503."""
    from contextlib import contextmanager

    from ca_service.store.db import DatabaseUnavailable

    services = app.extensions["ca_service"]
    served = client.get("/trust/bundle.pem")
    services.bundle.refresh_seconds = 0  # look at the database on every request

    @contextmanager
    def away():  # type: ignore[no-untyped-def]
        raise DatabaseUnavailable("The database is not available; try again shortly.")
        yield

    monkeypatch.setattr(services.db, "read", away)
    held = client.get("/trust/bundle.pem")
    assert (
        held.status_code == 200
        and held.data == served.data
        and held.headers["ETag"] == served.headers["ETag"]
    )
    assert client.get("/trust/bundle.json").status_code == 503
