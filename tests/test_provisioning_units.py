"""Pure parts of provisioning: the MAC in a Gigaset User-Agent, renewal windows, the XML, the
wrapping key."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ca_service.config import load_settings
from ca_service.domain import IssuedCertificate
from ca_service.enrollment.credentials import Delivery
from ca_service.enrollment.provisioning_xml import document, step_xml
from ca_service.errors import CAError
from ca_service.keystore.wrapping import file_wrapping_key
from ca_service.policy.user_agent import mac_in_user_agent


@pytest.mark.parametrize(
    ("agent", "mac"),
    [
        ("Gigaset N870 IP PRO/83.V2.65.0+build.8504c90;7C2F80E0D605", "7C2F80E0D605"),
        ('"Gigaset N870 IP PRO/83.V2.65.0+build.8504c90;7C2F80E0D605"', "7C2F80E0D605"),
        ("Gigaset N870 IP PRO/83.V2.65.0+build.8504c90;7C2F80E0D605;Handset=2", "7C2F80E0D605"),
        ('"Gigaset N670 IP PRO/83.V2.61.1;7c2f80e0d605";Handset=12', "7C2F80E0D605"),
        ("Gigaset N870 VI PRO/83.V2.65.0; 7C:2F:80:E0:D6:05 ", "7C2F80E0D605"),
        ("Gigaset N870 IP PRO/83.V2.65.0+build.8504c90", None),
        ("curl/8.5.0", None),
        ("Gigaset N870 IP PRO/83.V2.65.0;Handset=7C2F80E0D605", None),
        ("", None),
        (None, None),
    ],
)
def test_mac_in_user_agent(agent: str | None, mac: str | None) -> None:
    found = mac_in_user_agent(agent)
    assert (found.value if found else None) == mac


@given(st.text(max_size=300))
def test_user_agent_junk_never_raises(agent: str) -> None:
    mac_in_user_agent(agent)


def delivery(url: str) -> Delivery:
    now = datetime.now(UTC)
    cert = IssuedCertificate("01", "7C2F80E0D605", "device", "i", now, now, "", "")
    return Delivery(cert, url + "/cert/a", url + "/key/b", now, False)


def test_xml_document_and_step() -> None:
    raw = document(delivery('https://p.example/x?a=1&b="2"<'))
    assert b"&amp;b=&quot;2&quot;&lt;/key/b" in raw
    step = ET.fromstring(raw).find("custom/step")
    assert step is not None and step.get("key") == 'https://p.example/x?a=1&b="2"</key/b'
    only = ET.fromstring(step_xml(delivery("https://p.example")))
    assert only.attrib == {
        "type": "certificate",
        "url": "https://p.example/cert/a",
        "key": "https://p.example/key/b",
        "flags": "CLIENT_CERT",
    }
    empty = ET.fromstring(document(None))
    custom = empty.find("custom")  # present and empty (an Element without children is falsy)
    assert empty.attrib == {"version": "1.1", "productID": "e2"} and custom is not None and len(custom) == 0


def test_wrapping_key_is_stable_sealed_and_bound(tmp_path: Path) -> None:
    settings = load_settings(environ={}, home=tmp_path, key_passphrase="correct horse")
    first = file_wrapping_key(settings)
    assert file_wrapping_key(settings) == first and "key" not in repr(first).replace("WrappingKey", "")
    blob = first.wrap(b"secret key bytes", b"ctx-1")
    assert first.unwrap(blob, b"ctx-1") == b"secret key bytes"
    with pytest.raises(CAError):
        first.unwrap(blob, b"ctx-2")  # bound to its row
    with pytest.raises(CAError) as wrong:
        file_wrapping_key(load_settings(environ={}, home=tmp_path, key_passphrase="wrong"))
    assert "cannot be decrypted" in wrong.value.detail


def test_profile_key_format_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "ca.toml"
    config.write_text('[profiles.device]\nkey_format = "pem"\n')
    with pytest.raises(CAError) as refused:
        load_settings(environ={"CA_SERVICE_CONFIG": str(config)})
    assert "key_format must be one of pkcs8, traditional" in refused.value.detail
    config.write_text('[profiles.device]\nkey_format = "traditional"\ncert_chain = true\n')
    profile = load_settings(environ={"CA_SERVICE_CONFIG": str(config)}).profile("device")
    assert (profile.key_format, profile.cert_chain) == ("traditional", True)


def test_wrapping_key_file_is_created_once(tmp_path: Path) -> None:
    from ca_service.keystore.wrapping import _create_once

    _create_once(tmp_path / "k", b"first")
    _create_once(tmp_path / "k", b"second")
    assert (tmp_path / "k").read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["k"]
