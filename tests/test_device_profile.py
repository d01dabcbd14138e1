"""The device profile's subjectAltName (issue 12 item 2): the MAC as dNSName beside the RFC 4043
PermanentIdentifier, so that strict verifiers accept a device certificate as the SIP-TLS server
certificate for its MAC name and as a TLS client certificate; both are profile settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from flask.testing import FlaskClient

from ca_service import create_app
from ca_service.authority import permanent_identifier
from ca_service.config import Settings
from ca_service.domain import MacAddress, Profile
from tests.helpers import make_csr, openssl

MAC = "7C2F80C6E5C2"


def issue(client: FlaskClient, admin: dict[str, str], tmp: Path, cn: str = MAC) -> x509.Certificate:
    _, csr = make_csr(tmp, cn)
    response = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert response.status_code == 201, response.json
    return x509.load_pem_x509_certificate(response.json["certificate_pem"].encode())


def cas(client: FlaskClient) -> tuple[x509.Certificate, x509.Certificate]:
    root = x509.load_pem_x509_certificate(client.get("/ca/root.pem").data)
    issuing = x509.load_pem_x509_certificate(client.get("/ca/issuing.pem").data)
    return root, issuing


def san_of(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def test_san_carries_the_mac_as_dns_name_and_permanent_identifier(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path
) -> None:
    cert = issue(client, admin, tmp_path, cn="7c:2f:80:c6:e5:c2")
    assert san_of(cert) == [x509.DNSName(MAC), permanent_identifier(MacAddress(MAC))]
    crt = tmp_path / "dev.crt"
    crt.write_bytes(cert.public_bytes(Encoding.PEM))
    shown = openssl("x509", "-in", str(crt), "-noout", "-ext", "subjectAltName").stdout.decode()
    assert f"DNS:{MAC}" in shown and "Permanent Identifier" in shown


def test_cryptography_verifies_it_as_server_and_client_certificate(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path
) -> None:
    """cryptography's RFC 5280 / CA/B-style path validation: the server verifier matches the
    DNS-ID ``7C2F80C6E5C2`` (never the CN), the client verifier wants clientAuth and a SAN."""
    cert = issue(client, admin, tmp_path)
    root, issuing = cas(client)
    builder = PolicyBuilder().store(Store([root]))
    chain = builder.build_server_verifier(x509.DNSName(MAC)).verify(cert, [issuing])
    assert chain[0] == cert and chain[-1] == root
    with pytest.raises(VerificationError):
        builder.build_server_verifier(x509.DNSName("7C2F80C6E5C3")).verify(cert, [issuing])
    verified = builder.build_client_verifier().verify(cert, [issuing])
    assert x509.DNSName(MAC) in verified.subjects and verified.chain[-1] == root


def test_openssl_verifies_it_for_both_purposes(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path
) -> None:
    cert = issue(client, admin, tmp_path)
    root, issuing = cas(client)
    files = {}
    for name, c in (("root", root), ("issuing", issuing), ("leaf", cert)):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(c.public_bytes(Encoding.PEM))
    common = ["verify", "-CAfile", str(files["root"]), "-untrusted", str(files["issuing"])]
    for purpose in ("sslserver", "sslclient"):
        out = openssl(*common, "-purpose", purpose, "-verify_hostname", MAC, str(files["leaf"]))
        assert out.stdout.strip().endswith(b"OK")
    wrong = openssl(*common, "-verify_hostname", "7C2F80C6E5C3", str(files["leaf"]), check=False)
    assert wrong.returncode != 0 and b"hostname mismatch" in wrong.stdout + wrong.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"san_dns_name": False}, ["permanent"]),
        ({"san_permanent_identifier": False}, ["dns"]),
        ({"san_dns_name": False, "san_permanent_identifier": False}, []),
        ({"profiles": (Profile(name="device", san_dns_name=False),)}, ["permanent"]),
    ],
    ids=["site-no-dns-name", "site-no-permanent-identifier", "site-no-san", "profile-no-dns-name"],
)
def test_settings_turn_san_entries_off(
    make_settings: Callable[..., Settings],
    services,
    admin: dict[str, str],
    tmp_path: Path,
    overrides: dict[str, object],
    expected: list[str],
) -> None:
    app = create_app(make_settings(**overrides))
    cert = issue(app.test_client(), admin, tmp_path)
    kinds = ["dns" if isinstance(n, x509.DNSName) else "permanent" for n in san_of(cert)]
    assert kinds == expected
    assert cert.subject.rfc4514_string() == f"CN={MAC}"
