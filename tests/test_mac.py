"""MAC parsing and device identity rules (property tests, pure)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ca_service.domain import MacAddress
from ca_service.errors import CAError, Kind
from ca_service.policy import device_mac
from tests.strategies import mac_spellings, macs, spelling

octets = st.lists(st.integers(0, 255), min_size=6, max_size=6)


def spellings(values: list[int]) -> list[str]:
    hexes = [f"{v:02x}" for v in values]
    joined = "".join(hexes)
    return [
        ":".join(hexes),
        ":".join(hexes).upper(),
        "-".join(hexes).upper(),
        "-".join(hexes),
        f"{joined[:4]}.{joined[4:8]}.{joined[8:]}",
        joined,
        joined.upper(),
        f"  {joined.upper()} ",
    ]


@given(octets)
def test_every_spelling_normalises_to_one_value(values: list[int]) -> None:
    canonical = "".join(f"{v:02X}" for v in values)
    for text in spellings(values):
        assert MacAddress.parse(text).value == canonical


@given(macs, st.data())
def test_every_documented_spelling_in_any_case_normalises_to_one_value(
    mac: MacAddress, data: st.DataObject
) -> None:
    """Spellings drawn digit by digit (each digit's case, the separator style, white space
    around): all give the one canonical value."""
    texts = data.draw(st.lists(spelling(mac), min_size=1, max_size=5))
    assert {MacAddress.parse(t) for t in texts} == {mac}


@given(st.one_of(mac_spellings(), st.text(string.printable, max_size=40)))
def test_accepted_ascii_is_its_own_hex_digits(text: str) -> None:
    """Parsing never invents, drops or reorders a digit: the canonical value of an accepted ASCII
    text is its hex digits, upper-cased."""
    try:
        mac = MacAddress.parse(text)
    except CAError:
        return
    assert mac.value == "".join(c for c in text if c in string.hexdigits).upper()


@given(st.text(max_size=80))
def test_junk_raises_only_caerror(text: str) -> None:
    try:
        mac = MacAddress.parse(text)
    except CAError as exc:
        assert exc.kind is Kind.BAD_IDENTIFIER
    else:
        assert len(mac.value) == 12 and mac.value == mac.value.upper()


@given(st.one_of(st.text(max_size=80), mac_spellings()))
def test_device_mac_junk_raises_only_caerror(text: str) -> None:
    try:
        mac = device_mac(text)
    except CAError as exc:
        assert exc.kind is Kind.BAD_IDENTIFIER
        return
    assert mac == MacAddress.parse(text) and not (mac.is_multicast or mac.is_zero)


@given(octets)
def test_device_rules(values: list[int]) -> None:
    text = "".join(f"{v:02X}" for v in values)
    multicast = bool(values[0] & 1)
    zero = all(v == 0 for v in values)
    if multicast or zero:
        with pytest.raises(CAError):
            device_mac(text)
    else:
        assert device_mac(text).value == text


@pytest.mark.parametrize(
    "text",
    ["7C:2F:80:C6:E5", "7C2F80C6E5C2A", "7C:2F:80:C6E5C2", "7C2F.80C6E5C2", "GG2F80C6E5C2", "einstein2"],
)
def test_rejected_spellings(text: str) -> None:
    with pytest.raises(CAError):
        device_mac(text)


def test_oui_allowlist_is_policy() -> None:
    assert device_mac("7c:2f:80:00:00:01", ("7C2F80",)).value == "7C2F80000001"
    with pytest.raises(CAError) as err:
        device_mac("AA:BB:CC:00:00:01", ("7C2F80", "589EC6"))
    assert err.value.kind is Kind.REJECTED_IDENTIFIER  # a MAC the CA may not certify here (REST 403)
