"""Shared steps of the revocation tests: issue through the API, write CA files, publish."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from tests.helpers import make_csr


def issue(client: FlaskClient, headers: dict[str, str], tmp: Path, mac: str, name: str) -> tuple[str, Path]:
    """Issue a certificate for ``mac`` (key and CSR by openssl); returns (serial, cert file)."""
    _, csr = make_csr(tmp, mac, name=name)
    response = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=headers)
    assert response.status_code == 201, response.json
    crt = tmp / f"{name}.crt"
    crt.write_text(response.json["certificate_pem"])
    return response.json["serial"], crt


def ca_files(client: FlaskClient, tmp: Path) -> tuple[Path, Path]:
    root, issuing = tmp / "root.pem", tmp / "issuing.pem"
    root.write_bytes(client.get("/ca/root.pem").data)
    issuing.write_bytes(client.get("/ca/issuing.pem").data)
    return root, issuing
