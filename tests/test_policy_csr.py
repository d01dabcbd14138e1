"""CSR policy (design decision 3), pure: ``check_csr`` over the checked-in CSRs of
tests/vectors/csr/ (made by ``make-csrs.sh``, each recipe in tests/vectors/README.md), and
property tests of CSRs made here with cryptography. No database, no openssl run.

Each file is accepted with the MAC and key type it names, or refused with the kind and the words
of the rule. The REST refusals (status, problem type, nothing written) are tests/test_refusals.py.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import example, given
from hypothesis import strategies as st

from ca_service.domain import MacAddress
from ca_service.errors import CAError, Kind
from ca_service.policy import CsrRules, check_csr
from tests.csr_vectors import ACCEPTED, CSRS, MAC, REFUSED, VECTORS, read
from tests.strategies import cn_text, csr_with, mac_of, mac_spellings


def public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_every_vector_has_an_expectation_and_a_recipe() -> None:
    files = {p.name for p in CSRS.iterdir() if p.suffix in (".csr", ".der")}
    assert files == set(ACCEPTED) | set(REFUSED)
    readme = (VECTORS / "README.md").read_text()
    assert [name for name in sorted(files) if f"`{name}`" not in readme] == []


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_vectors(name: str) -> None:
    mac, key_type = ACCEPTED[name]
    facts = check_csr(read(name), CsrRules())
    assert (facts.mac, facts.key_type) == (MacAddress(mac), key_type)
    raw = read(name)
    csr = x509.load_der_x509_csr(raw) if name.endswith(".der") else x509.load_pem_x509_csr(raw)
    assert public_der(facts.public_key) == public_der(csr.public_key())  # the CSR's own key


def test_pem_as_text_is_accepted_too() -> None:
    assert check_csr(read("ok-p256-sha256.csr").decode(), CsrRules()).mac == MacAddress(MAC)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_vectors(name: str) -> None:
    kind, words = REFUSED[name]
    with pytest.raises(CAError) as refused:
        check_csr(read(name), CsrRules())
    assert refused.value.kind is kind, refused.value.detail
    assert words in refused.value.detail


def test_rules_come_from_the_settings() -> None:
    """The same files against other rules: curves, RSA sizes and the OUI allow-list."""
    with pytest.raises(CAError, match="P-384 is refused; allowed curves: P-256"):
        check_csr(read("ok-p384-sha384.csr"), CsrRules(allowed_curves=("secp256r1",)))
    with pytest.raises(CAError, match="shorter than 3072 bits"):
        check_csr(read("ok-rsa2048-sha256.csr"), CsrRules(min_rsa_bits=3072))
    with pytest.raises(CAError, match="longer than 1024 bits") as too_long:
        check_csr(read("ok-rsa2048-sha256.csr"), CsrRules(min_rsa_bits=512, max_rsa_bits=1024))
    assert too_long.value.kind is Kind.BAD_KEY
    with pytest.raises(CAError) as outside:
        check_csr(read("ok-p256-sha256.csr"), CsrRules(oui_allowlist=("589EC6",)))
    assert (
        outside.value.kind is Kind.REJECTED_IDENTIFIER and "OUI allow-list (589EC6)" in outside.value.detail
    )
    assert check_csr(read("ok-p256-sha256.csr"), CsrRules(oui_allowlist=("7c2f80",))).mac == MacAddress(MAC)


def test_a_certificate_is_not_a_csr() -> None:
    with pytest.raises(CAError) as refused:
        check_csr((VECTORS / "factory-mac.pem").read_bytes(), CsrRules())
    assert refused.value.kind is Kind.BAD_CSR and "cannot be parsed" in refused.value.detail


# -- properties -----------------------------------------------------------------------------------
@given(st.one_of(mac_spellings(), cn_text))
def test_an_accepted_csr_names_the_mac_of_its_cn(cn: str) -> None:
    """Whatever the CN, check_csr either refuses with a CAError or returns the MAC that the CN
    spells: never another one. A documented spelling of a device MAC is always accepted."""
    spelled = mac_of(cn)
    try:
        facts = check_csr(csr_with(cn), CsrRules())
    except CAError:
        assert spelled is None or spelled.is_multicast or spelled.is_zero
        return
    assert facts.mac == spelled


@given(st.lists(st.one_of(mac_spellings(), cn_text), min_size=2, max_size=3))
def test_several_cns_are_accepted_only_when_all_spell_one_mac(cns: list[str]) -> None:
    """RFC 8555 section 7.4: every name of the CSR must be the one device's MAC."""
    spelled = {mac_of(cn) for cn in cns}
    try:
        facts = check_csr(csr_with(*cns), CsrRules())
    except CAError as refused:
        assert refused.kind is Kind.BAD_IDENTIFIER
        assert len(spelled) > 1 or None in spelled or any(m.is_multicast or m.is_zero for m in spelled if m)
        return
    assert spelled == {facts.mac}


PEM_BEGIN, PEM_END = b"-----BEGIN CERTIFICATE REQUEST-----\n", b"\n-----END CERTIFICATE REQUEST-----\n"


@given(st.binary(max_size=600))
def test_junk_bytes_raise_only_caerror(data: bytes) -> None:
    for blob in (data, PEM_BEGIN + data + PEM_END):
        with pytest.raises(CAError):
            check_csr(blob, CsrRules())


GOOD_DER = (CSRS / "ok-p256-sha256.der").read_bytes()
VERSION_OCTET = 7  # 30 81 xx | 30 xx | 02 01 00: the value of CertificationRequestInfo.version


@example(offset=VERSION_OCTET, flip=1)  # always tried first: a CSR of version 2 (see bad-version.csr)
@given(st.integers(0, len(GOOD_DER) - 1), st.integers(1, 255))
def test_a_changed_octet_is_refused_or_changes_nothing_that_matters(offset: int, flip: int) -> None:
    """Any one octet of a good CSR changed: the policy refuses it with a CAError (it no longer
    parses, or its signature no longer verifies), or - where DER leaves room, such as unused
    bits - it still names the same MAC and key."""
    assert GOOD_DER[VERSION_OCTET - 2 : VERSION_OCTET + 1] == b"\x02\x01\x00"
    changed = GOOD_DER[:offset] + bytes([GOOD_DER[offset] ^ flip]) + GOOD_DER[offset + 1 :]
    try:
        facts = check_csr(changed, CsrRules())
    except CAError:
        return
    original = check_csr(GOOD_DER, CsrRules())
    assert (facts.mac, public_der(facts.public_key)) == (original.mac, public_der(original.public_key))
