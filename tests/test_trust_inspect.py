"""Device certificate inspection, firmware compatibility and the trust CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from ca_service.bundle import firmware
from ca_service.cli import main
from ca_service.errors import CAError
from ca_service.store.models import CertificateRow, utcnow
from tests.helpers import openssl
from tests.trust_helpers import DEVICES, import_gigaset_anchors, issue_ours, vector


def inspect(client: FlaskClient, headers: dict[str, str], pem: str) -> dict:
    response = client.post("/api/v1/inspect", json={"pem": pem}, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_inspect_every_generation(client: FlaskClient, admin: dict[str, str], token) -> None:
    import_gigaset_anchors(client, admin)
    auditor = token("auditor")
    results = {name: inspect(client, auditor, vector(name).read_text()) for name in DEVICES}
    assert {n: r["generation"] for n, r in results.items()} == DEVICES
    einstein = results["factory-einstein2.pem"]
    assert einstein["mac"] is None and "Einstein2" in einstein["mac_problem"]
    assert einstein["advice"][0].startswith("Replace this certificate: CN=Einstein2")
    assert einstein["chain"]["chains_to_bundle"] is True
    assert einstein["chain"]["anchor"]["purpose"] == "gigaset-factory"
    mac = results["factory-mac.pem"]
    assert mac["mac"] == "7C2F80C6E5C2" and mac["key"] == {"type": "rsa", "bits": 2048, "weak": False}
    assert mac["signature"]["algorithm"] == "sha256WithRSAEncryption"
    assert mac["advice"] == ["Nothing to do: servers that load the trust bundle accept this certificate."]
    sha1 = results["factory-sha1.pem"]
    assert sha1["signature"] == {
        "algorithm": "sha1WithRSAEncryption",
        "hash": "sha1",
        "refused_by_software_2_57_and_later": True,
    }
    assert any("refuses SHA-1" in a for a in sha1["advice"])
    tech = results["technologies-p256.pem"]
    assert tech["mac"] == "7C2F80C6E5C3" and tech["key"]["type"] == "ec-p256"
    assert tech["signature"]["algorithm"] == "ecdsa-with-SHA256"
    assert tech["chain"]["anchor"]["label"] == "Gigaset Technologies device CA"
    assert (
        tech["chain"]["path"][-1].endswith("CN=Gigaset Technologies Root CA") is False
    )  # RFC 4514: CN first
    assert tech["chain"]["path"] == [
        "CN=Gigaset Technologies Device CA,O=Gigaset Technologies GmbH,L=Bocholt,C=DE",
        "CN=Gigaset Technologies Root CA,O=Gigaset Technologies GmbH,L=Bocholt,C=DE",
    ]
    unlisted = results["unlisted-device.pem"]
    assert unlisted["chain"]["chains_to_bundle"] is False
    assert "No certificate in the bundle issued" in unlisted["chain"]["problem"]
    assert any("trust capture" in a for a in unlisted["advice"])
    assert all(r["validity"]["days_left"] > 7000 for r in results.values())


def test_inspect_without_anchors_names_the_missing_ca(client: FlaskClient, admin: dict[str, str]) -> None:
    factory = inspect(client, admin, vector("factory-mac.pem").read_text())
    assert factory["generation"] == "gigaset-factory-mac"  # recognised by the Gigaset.net issuer name
    assert factory["chain"]["chains_to_bundle"] is False
    assert any("Gigaset.net CA is missing" in a for a in factory["advice"])
    tech = inspect(client, admin, vector("technologies-p256.pem").read_text())
    assert tech["generation"] == "gigaset-technologies"
    assert any("--purpose gigaset-technologies" in a for a in tech["advice"])


def test_inspect_uses_the_presented_chain(client: FlaskClient, admin: dict[str, str]) -> None:
    root = vector("gigaset-tech-root.pem").read_text()
    body = {"pem": root, "purpose": "gigaset-technologies", "label": "root only"}
    assert client.post("/api/v1/trust/anchors", json=body, headers=admin).status_code == 201
    leaf = vector("technologies-p256.pem").read_text()
    alone = inspect(client, admin, leaf)
    assert alone["chain"]["chains_to_bundle"] is False
    with_chain = inspect(client, admin, leaf + vector("gigaset-tech-device-ca.pem").read_text())
    assert with_chain["chain"]["chains_to_bundle"] is True
    assert with_chain["chain"]["anchor"]["label"] == "root only"


def test_inspect_ours_and_revoked(
    client: FlaskClient, admin: dict[str, str], services, tmp_path: Path
) -> None:
    cert, _, issued = issue_ours(client, admin, tmp_path)
    der = openssl("x509", "-in", str(cert), "-outform", "DER").stdout
    raw = client.post("/api/v1/inspect", data=der, headers={**admin, "Content-Type": "application/pkix-cert"})
    assert raw.status_code == 200, raw.json
    ours = raw.json
    assert ours["generation"] == "ours" and ours["mac"] == "7C2F80C6E5C6"
    assert ours["ours"]["status"] == "valid" and ours["ours"]["serial"] == issued["serial"]
    assert ours["chain"]["chains_to_bundle"] and ours["chain"]["anchor"]["purpose"] == "private"
    with services.db.write() as session:
        session.execute(
            update(CertificateRow)
            .where(CertificateRow.serial == issued["serial"])
            .values(
                status="revoked", revoked_at=utcnow(), revocation_reason="keyCompromise", replaced_by="0ABC"
            )
        )
    revoked = inspect(client, admin, cert.read_text())
    assert revoked["ours"]["status"] == "revoked" and revoked["ours"]["replaced_by"] == "0ABC"
    assert revoked["advice"][0].startswith("Revoked on ") and "serial 0ABC" in revoked["advice"][0]


def test_inspect_refuses_garbage(client: FlaskClient, admin: dict[str, str]) -> None:
    bad = client.post(
        "/api/v1/inspect", data=b"junk", headers={**admin, "Content-Type": "application/x-pem-file"}
    )
    assert bad.status_code == 400 and "No X.509 certificate could be read" in bad.json["detail"]
    form = client.post("/api/v1/inspect", data=b"junk", headers={**admin, "Content-Type": "text/plain"})
    assert form.status_code == 415 and "application/json" in form.json["detail"]
    empty = client.post("/api/v1/inspect", json={}, headers=admin)
    assert empty.status_code == 400 and "'pem'" in empty.json["detail"]
    assert client.post("/api/v1/inspect", json={"pem": "x"}).status_code == 401


@pytest.mark.parametrize(
    ("given_", "row", "services_", "purposes"),
    [
        ("2.56", "< 2.57", ("factory", "factory", "factory"), ["gigaset-factory", "private"]),
        ("2.57", "2.57", ("factory", "second", "second"), ["gigaset-factory", "private"]),
        ("2.59", "2.59, 2.60", ("factory", "factory", "second"), ["gigaset-factory", "private"]),
        ("2.59.1", "2.59, 2.60", ("factory", "factory", "second"), ["gigaset-factory", "private"]),
        ("83.V2.59.1", "2.59, 2.60", ("factory", "factory", "second"), ["gigaset-factory", "private"]),
        ("83.V2.61.0", ">= 2.61", ("new", "new", "second"), ["gigaset-technologies", "private"]),
        ("3.0", ">= 2.61", ("new", "new", "second"), ["gigaset-technologies", "private"]),
    ],
)
def test_compatibility(
    client: FlaskClient, token, given_: str, row: str, services_: tuple[str, ...], purposes: list[str]
) -> None:
    response = client.get(f"/api/v1/compatibility?firmware={given_}", headers=token("auditor"))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["table_row"] == row
    assert tuple(body["services"][s]["certificate"] for s in firmware.SERVICES) == services_
    assert body["trust_purposes"] == purposes
    assert body["missing_purposes"] == purposes[:1]  # nothing imported yet
    assert any("trust capture" in n for n in body["notes"])
    assert body["sha1_refused"] == (given_ not in ("2.56",))
    assert [a["purpose"] for a in body["anchors"]] == ["private", "private"]


def test_compatibility_refusals(client: FlaskClient, admin: dict[str, str]) -> None:
    bad = client.get("/api/v1/compatibility?firmware=latest", headers=admin)
    assert bad.status_code == 400 and "2.59, 2.59.1 or 83.V2.59.1" in bad.json["detail"]
    assert client.get("/api/v1/compatibility", headers=admin).status_code == 422


@given(st.integers(0, 999), st.integers(0, 999), st.integers(0, 9999))
def test_every_spelling_gives_one_version(major: int, minor: int, patch: int) -> None:
    plain = firmware.parse_version(f"{major}.{minor}.{patch}")
    assert firmware.parse_version(f"83.V{major}.{minor}.{patch}") == plain
    assert firmware.parse_version(f"83.v{major}.{minor}.{patch}+build.8504c90") == plain
    assert firmware.parse_version(f"83.V{major}.{minor}.{patch} build.1") == plain  # '+' unencoded in a URL
    assert firmware.generation(firmware.parse_version(f"{major}.{minor}")) == firmware.generation(plain)


@given(st.text(max_size=120))
def test_junk_versions_raise_only_caerror(text: str) -> None:
    try:
        firmware.parse_version(text)
    except CAError:
        pass


def test_cli_trust_and_inspect(services, env_for: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), env=env_for, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = run(
        "trust", "add", str(vector("gigaset-net-ca.pem")), "--purpose", "gigaset-factory", "--label", "GN"
    )
    assert "'GN' (gigaset-factory)" in out
    der = tmp_path / "root.der"
    der.write_bytes(openssl("x509", "-in", str(vector("gigaset-tech-root.pem")), "-outform", "DER").stdout)
    run("trust", "add", str(der), "--purpose", "gigaset-technologies", "--label", "GT root")
    run(
        "trust",
        "add",
        str(vector("gigaset-tech-device-ca.pem")),
        "--purpose",
        "gigaset-technologies",
        "--label",
        "GT",
    )
    listing = json.loads(run("trust", "list", "--json"))
    assert [a["label"] for a in listing] == ["GN", "GT root", "GT"]
    table = run("trust", "list").splitlines()
    assert table[0].split() == ["ID", "PURPOSE", "LABEL", "NOT", "AFTER", "STATE", "FINGERPRINT", "SHA256"]
    bundle = tmp_path / "bundle.pem"
    run("trust", "export", "--out", str(bundle))
    for name in ("factory-mac.pem", "technologies-p256.pem"):
        assert openssl("verify", "-CAfile", str(bundle), str(vector(name)), check=False).returncode == 0
    exported = json.loads(run("trust", "export", "--json", "--firmware", "2.59"))
    assert [c["purpose"] for c in exported["certificates"]] == ["gigaset-factory", "private", "private"]
    roots = json.loads(run("trust", "export", "--json", "--anchors", "roots"))
    assert [c["label"] for c in roots["certificates"]] == ["GN", "GT root", "ca-service root CA"]
    run("trust", "retire", str(listing[0]["id"]))
    assert len(run("trust", "list").splitlines()) == 3  # the header and two anchors
    assert "retired" in run("trust", "list", "--all")
    text = run("inspect", str(vector("factory-einstein2.pem")))
    assert (
        "generation:  gigaset-factory-einstein2" in text and "next:        Replace this certificate" in text
    )
    assert "chains to" not in text  # the Gigaset.net anchor was retired above
    refused = runner.invoke(
        main,
        ["trust", "add", str(vector("factory-mac.pem")), "--purpose", "other", "--label", "x"],
        env=env_for,
    )
    assert refused.exit_code == 1 and "is not a CA certificate" in refused.output
