"""Parsers of untrusted text (design.md, Habits): junk never raises anything but CAError, and what
is accepted comes out canonical. The MAC parsers are in tests/test_mac.py, check_csr in
tests/test_policy_csr.py, PKCS#11 URIs in tests/test_keystore.py, firmware versions in
tests/test_trust_inspect.py, certificate bundles in tests/test_trust_anchors.py."""

from __future__ import annotations

import re
import string

from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from ca_service.authority.ca import parse_subject
from ca_service.domain import parse_serial, serial_text
from ca_service.errors import CAError, Kind
from ca_service.policy.reasons import REASONS, parse_reason
from ca_service.policy.scope import normalize_scope
from ca_service.renewal.certid import parse_cert_id

HEX = "0123456789abcdefABCDEF"
junk = st.text(max_size=80)
hexish = st.text(st.sampled_from(HEX + ":. x0-"), max_size=50)  # near misses: mostly hex


@given(st.one_of(junk, hexish))
def test_serials(text: str) -> None:
    try:
        serial = parse_serial(text)
    except CAError as exc:
        assert exc.kind is Kind.MALFORMED
        return
    assert re.fullmatch(r"(?:[0-9A-F]{2})+", serial) and parse_serial(serial) == serial
    digits = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    assert int(serial, 16) == int(digits, 16)


@given(st.integers(1, 2**160))
def test_serials_round_trip(value: int) -> None:
    text = serial_text(value)
    spaced = ":".join(text[i : i + 2] for i in range(0, len(text), 2)).lower()
    assert parse_serial(text) == parse_serial(spaced) == parse_serial("0x" + text) == text


@given(st.one_of(junk, hexish))
def test_scopes(text: str) -> None:
    try:
        scope = normalize_scope(text)
    except CAError as exc:
        assert exc.kind is Kind.MALFORMED
        return
    assert re.fullmatch(r"[0-9A-F]{1,12}", scope) and normalize_scope(scope) == scope


@given(junk)
def test_revocation_reasons(text: str) -> None:
    try:
        assert parse_reason(text) == text and text in REASONS
    except CAError as exc:
        assert exc.kind is Kind.MALFORMED and text not in REASONS


@given(st.one_of(junk, st.text(st.sampled_from(string.ascii_letters + string.digits + "-_.="), max_size=60)))
def test_cert_ids(text: str) -> None:
    try:
        aki, serial = parse_cert_id(text)
    except CAError as exc:
        assert exc.kind is Kind.MALFORMED
        return
    assert isinstance(aki, bytes) and parse_serial(serial) == serial and int(serial, 16) < 2**168


@given(st.one_of(junk, st.text(st.sampled_from('/=,+\\"#<>; CNOU=abc'), max_size=60)))
def test_subjects(text: str) -> None:
    try:
        name = parse_subject(text)
    except CAError as exc:
        assert exc.kind is Kind.MALFORMED
        return
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)  # a CA subject always has a CN
