"""CSR names (issue 12 item 1, RFC 8555 section 7.4): the device MAC in the CN, in SAN dNSName
entries, or both; every name the same MAC (the order's, for ACME). Exact answers of REST and ACME
for each case, and nothing stored when refused; property tests of the pure policy."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from ca_service import Services
from ca_service.authority import permanent_identifier
from ca_service.domain import MacAddress
from ca_service.errors import CAError, Kind
from ca_service.policy import CsrRules, check_csr
from tests.acme_helpers import acme_client, nonce, raw_post, register
from tests.helpers import LiveServer, make_csr, openssl, version2_csr
from tests.test_acme_refusals import refused as acme_refused
from tests.test_acme_refusals import stored
from tests.test_refusals import PREFIX
from tests.test_refusals import refused as rest_refused

MAC, OTHER = "7C2F80C6E5C2", "7C2F80C6E5C3"
NOT_A_MAC_TAIL = (
    " is not a device MAC address; it must be 12 hex digits such as 7C2F80C6E5C2 "
    "(separators : - . are accepted)."
)
SAME_MAC = "; every CN and SAN name must be the same device MAC."
ORDER_MAC = "; every CN and SAN name must be the order's MAC."


@dataclass(frozen=True)
class Case:
    id: str
    cn: str | None
    san: tuple[str, ...]
    rest: str  # the REST detail (no order: the names must agree with each other)
    acme: str  # the ACME finalize detail (an order for MAC)
    kind: str = "bad-identifier"
    status: int = 422


REFUSED = [
    Case(
        "cn-and-san-disagree",
        MAC,
        (f"DNS:{OTHER}",),
        f"The CSR names two devices: CN '{MAC}' is {MAC} and SAN dNSName '{OTHER}' is {OTHER}{SAME_MAC}",
        f"The CSR's SAN dNSName '{OTHER}' is device {OTHER}, but this order is for {MAC}{ORDER_MAC}",
    ),
    Case(
        "cn-names-another-device",
        "7c-2f-80-c6-e5-c3",
        (f"DNS:{MAC}",),
        f"The CSR names two devices: CN '7c-2f-80-c6-e5-c3' is {OTHER} and SAN dNSName '{MAC}' is {MAC}"
        + SAME_MAC,
        f"The CSR's CN '7c-2f-80-c6-e5-c3' is device {OTHER}, but this order is for {MAC}{ORDER_MAC}",
    ),
    Case(
        "two-macs-in-san",
        None,
        (f"DNS:{MAC}", "DNS:7c:2f:80:c6:e5:c3"),
        f"The CSR names two devices: SAN dNSName '{MAC}' is {MAC} and SAN dNSName '7c:2f:80:c6:e5:c3' "
        f"is {OTHER}{SAME_MAC}",
        f"The CSR's SAN dNSName '7c:2f:80:c6:e5:c3' is device {OTHER}, but this order is for {MAC}"
        + ORDER_MAC,
    ),
    Case(
        "san-not-a-mac",
        MAC,
        ("DNS:evil.example",),
        "The SAN dNSName 'evil.example'" + NOT_A_MAC_TAIL,
        "The SAN dNSName 'evil.example'" + NOT_A_MAC_TAIL,
    ),
    Case(
        "san-einstein2",
        None,
        ("DNS:Einstein2",),
        "SAN dNSName=Einstein2 is the generic Gigaset factory name shared by many devices and identifies "
        "no device; the CN must be the device's MAC address, e.g. CN=7C2F80C6E5C2.",
        "SAN dNSName=Einstein2 is the generic Gigaset factory name shared by many devices and identifies "
        "no device; the CN must be the device's MAC address, e.g. CN=7C2F80C6E5C2.",
    ),
    Case(
        "san-ip-address",
        MAC,
        ("IP:10.0.0.1",),
        "The CSR's subjectAltName asks for iPAddress '10.0.0.1'; only dNSName entries (or an RFC 4043 "
        "PermanentIdentifier) that spell the device MAC are accepted.",
        "The CSR's subjectAltName asks for iPAddress '10.0.0.1'; only dNSName entries (or an RFC 4043 "
        "PermanentIdentifier) that spell the device MAC are accepted.",
    ),
    Case(
        "no-name",
        None,
        (),
        "The CSR names no device: put the device MAC in the subject CN or in a subjectAltName dNSName, "
        "e.g. CN=7C2F80C6E5C2 (RFC 8555 section 7.4).",
        "The CSR names no device: put the device MAC in the subject CN or in a subjectAltName dNSName, "
        "e.g. CN=7C2F80C6E5C2 (RFC 8555 section 7.4).",
    ),
]
VERSION_2 = "The CSR has version 2; only PKCS#10 version 1 requests (RFC 2986, version field 0) are accepted."
ACCEPTED = [
    ("san-only", None, (f"DNS:{MAC}",)),  # certbot's and Caddy's CSRs
    ("cn-and-san-agree", "7c:2f:80:c6:e5:c2", (f"DNS:{MAC}", "DNS:7c2f.80c6.e5c2")),
]


def csr_of(tmp: Path, cn: str | None, san: tuple[str, ...], name: str = "dev") -> Path:
    return make_csr(tmp, cn, name=name, san=san)[1]


def pem_of_der(der: bytes) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def san_dns_names(cert_pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


# -- REST: POST /api/v1/certificates ---------------------------------------------------------------
@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_rest_refuses(client: FlaskClient, admin, services: Services, tmp_path: Path, case: Case) -> None:
    body = rest_refused(client, admin, csr_of(tmp_path, case.cn, case.san).read_text(), services)
    assert (body["_status"], body["type"], body["detail"]) == (case.status, PREFIX + case.kind, case.rest)


def test_rest_refuses_a_version_2_csr(client: FlaskClient, admin, services: Services, tmp_path: Path) -> None:
    der = version2_csr(tmp_path)
    checked = openssl("req", "-in", str(der), "-inform", "DER", "-noout", "-verify")
    assert b"verify OK" in checked.stdout + checked.stderr  # well signed: only the version is wrong
    body = rest_refused(client, admin, pem_of_der(der.read_bytes()), services)
    assert (body["_status"], body["type"], body["detail"]) == (400, PREFIX + "bad-csr", VERSION_2)


@pytest.mark.parametrize(("name", "cn", "san"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_rest_accepts(client: FlaskClient, admin, tmp_path: Path, name: str, cn: str | None, san) -> None:
    response = client.post(
        "/api/v1/certificates", json={"csr": csr_of(tmp_path, cn, san).read_text()}, headers=admin
    )
    assert response.status_code == 201, response.json
    assert response.json["mac"] == MAC
    assert san_dns_names(response.json["certificate_pem"]) == [MAC]


# -- ACME: finalize (RFC 8555 section 7.4) -----------------------------------------------------------
@pytest.mark.slow
def test_acme_finalize_answers(live: LiveServer, services: Services, tmp_path: Path) -> None:
    acme = acme_client(live.url)
    regr = register(services, acme)

    def post(url: str, payload: dict[str, Any] | None) -> Any:
        return raw_post(url, payload, acme.net.key, nonce(live.url), kid=regr.uri)

    def order() -> Any:
        created = post(acme.directory["newOrder"], {"identifiers": [{"type": "dns", "value": MAC}]})
        assert created.status_code == 201, created.text
        return created

    def finalize(created: Any, der: bytes) -> Any:
        return post(created.json()["finalize"], {"csr": base64.urlsafe_b64encode(der).rstrip(b"=").decode()})

    def der_of(path: Path) -> bytes:
        return x509.load_pem_x509_csr(path.read_bytes()).public_bytes(Encoding.DER)

    pending = order()
    for case in REFUSED:
        before = stored(services)
        body = acme_refused(finalize(pending, der_of(csr_of(tmp_path, case.cn, case.san, case.id))), "badCSR")
        assert (body["status"], body["detail"]) == (400, case.acme), case.id
        assert stored(services) == before, case.id
    before = stored(services)
    body = acme_refused(finalize(pending, version2_csr(tmp_path).read_bytes()), "badCSR")
    assert (body["status"], body["detail"]) == (400, VERSION_2)
    assert stored(services) == before
    assert post(pending.headers["Location"], None).json()["status"] == "ready"

    (tmp_path / "root.pem").write_bytes(services.directory.get().root.pem.encode())
    for name, cn, san in ACCEPTED:
        done = finalize(order(), der_of(csr_of(tmp_path, cn, san, name)))
        assert done.status_code == 200 and done.json()["status"] == "valid", done.text
        chain = post(done.json()["certificate"], None).text
        assert san_dns_names(chain) == [MAC]
        (tmp_path / f"{name}.pem").write_text(chain)
        out = openssl(
            "verify",
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / f"{name}.pem"),
            str(tmp_path / f"{name}.pem"),
        )
        assert out.stdout.strip().endswith(b"OK")


# -- the pure policy ---------------------------------------------------------------------------------
KEY = ec.generate_private_key(ec.SECP256R1())
RULES = CsrRules()
SPELLINGS = [
    lambda m: m,
    str.lower,
    lambda m: ":".join(m[i : i + 2] for i in range(0, 12, 2)),
    lambda m: "-".join(m[i : i + 2] for i in range(0, 12, 2)).lower(),
    lambda m: ".".join(m[i : i + 4] for i in range(0, 12, 4)).lower(),
]
name_strategy = st.tuples(st.sampled_from([MAC, OTHER]), st.sampled_from(SPELLINGS))


def built_csr(cns: list[str], dns_names: list[str]) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns])
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    return builder.sign(KEY, hashes.SHA256()).public_bytes(Encoding.DER)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(name_strategy, max_size=2),
    st.lists(name_strategy, max_size=3),
    st.sampled_from([None, MAC, OTHER]),
)
def test_accepted_exactly_when_every_name_is_the_one_mac(cns, sans, expected) -> None:
    """Any mix of CN and SAN dNSName spellings: accepted iff there is a name and all of them
    spell one MAC (the expected one when given); the refusal is always BAD_IDENTIFIER."""
    der = built_csr([spell(m) for m, spell in cns], [spell(m) for m, spell in sans])
    macs = {m for m, _ in cns + sans}
    ok = len(macs) == 1 and (expected is None or macs == {expected})
    want = MacAddress(expected) if expected else None
    if ok:
        assert check_csr(der, RULES, want).mac == MacAddress(macs.pop())
    else:
        with pytest.raises(CAError) as err:
            check_csr(der, RULES, want)
        assert err.value.kind is Kind.BAD_IDENTIFIER


VALID = built_csr([MAC], [MAC.lower()])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255), st.integers(0, 3))
def test_damaged_csrs_raise_only_caerror(position: int, value: int, cut: int) -> None:
    """A CSR with one octet changed (and maybe its end cut off) is refused as a CAError or,
    where the change keeps it valid, accepted for the MAC; never another exception."""
    der = bytearray(VALID)
    der[position] = value
    try:
        facts = check_csr(bytes(der[: len(der) - cut]), RULES, MacAddress(MAC))
    except CAError:
        return
    assert facts.mac == MacAddress(MAC)


def test_permanent_identifier_in_the_csr_is_a_name_too() -> None:
    """A CSR may carry the MAC as RFC 4043 PermanentIdentifier (the form this CA issues); it must
    spell the same MAC as every other name, and one that cannot be read is BAD_CSR."""

    def with_san(*names: x509.GeneralName) -> bytes:
        builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        return builder.sign(KEY, hashes.SHA256()).public_bytes(Encoding.DER)

    mine, other = (permanent_identifier(MacAddress(m)) for m in (MAC, OTHER))
    assert check_csr(with_san(mine), RULES, MacAddress(MAC)).mac == MacAddress(MAC)
    assert check_csr(with_san(x509.DNSName(MAC.lower()), mine), RULES).mac == MacAddress(MAC)
    with pytest.raises(CAError) as err:
        check_csr(with_san(x509.DNSName(MAC), other), RULES)
    assert err.value.detail == (
        f"The CSR names two devices: SAN dNSName '{MAC}' is {MAC} and SAN PermanentIdentifier "
        f"'{OTHER}' is {OTHER}{SAME_MAC}"
    )
    broken = x509.OtherName(mine.type_id, b"\x30\x05\x0c\x0cABC")
    with pytest.raises(CAError) as err:
        check_csr(with_san(broken), RULES)
    assert err.value.kind is Kind.BAD_CSR
