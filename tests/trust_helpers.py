"""Helpers for the trust bundle tests: the vectors of tests/vectors/ and CAs made on the spot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask.testing import FlaskClient

from tests.helpers import make_csr, openssl

VECTORS = Path(__file__).resolve().parent / "vectors"
GIGASET_ANCHORS = (
    ("gigaset-net-ca.pem", "gigaset-factory", "Gigaset.net (factory)"),
    ("gigaset-tech-root.pem", "gigaset-technologies", "Gigaset Technologies root"),
    ("gigaset-tech-device-ca.pem", "gigaset-technologies", "Gigaset Technologies device CA"),
)
# device certificate vectors -> generation as inspection names it
DEVICES = {
    "factory-einstein2.pem": "gigaset-factory-einstein2",
    "factory-mac.pem": "gigaset-factory-mac",
    "factory-sha1.pem": "gigaset-factory-mac",
    "technologies-p256.pem": "gigaset-technologies",
    "unlisted-device.pem": "unknown-issuer",
}


def vector(name: str) -> Path:
    return VECTORS / name


def import_gigaset_anchors(client: FlaskClient, admin: dict[str, str]) -> list[dict]:
    out = []
    for name, purpose, label in GIGASET_ANCHORS:
        body = {"pem": vector(name).read_text(), "purpose": purpose, "label": label}
        response = client.post("/api/v1/trust/anchors", json=body, headers=admin)
        assert response.status_code == 201, response.json
        out.append(response.json)
    return out


def issue_ours(
    client: FlaskClient, admin: dict[str, str], tmp: Path, mac: str = "7C2F80C6E5C6"
) -> tuple[Path, Path, dict]:
    """A device certificate issued through our API: (certificate file, key file, response)."""
    key, csr = make_csr(tmp, mac, name=f"ours-{mac}")
    response = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert response.status_code == 201, response.json
    cert = tmp / f"ours-{mac}.pem"
    cert.write_text(response.json["certificate_pem"])
    chain = tmp / f"ours-{mac}-chain.pem"
    chain.write_text(response.json["certificate_pem"] + response.json["chain_pem"])
    return cert, key, response.json


def verifies(bundle: Path, cert: Path) -> bool:
    """``openssl verify -CAfile bundle cert``; intermediates come only from the bundle."""
    result = openssl("verify", "-CAfile", str(bundle), str(cert), check=False)
    return result.returncode == 0 and result.stdout.strip().endswith(b": OK")


def make_ca_pem(cn: str, not_before: datetime, not_after: datetime, ca: bool = True) -> str:
    """A self-signed P-256 certificate with chosen validity (openssl 3.0 cannot back-date one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def days(n: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=n)
