"""The wrapping key in a PKCS#11 token (SoftHSM2): an AES-256 key that never leaves the token
encrypts device keys and EAB HMAC keys at rest, through the same code paths as the file key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient
from sqlalchemy import select

from ca_service.errors import CAError
from ca_service.keystore.wrapping import ensure_wrapping_key, wrapping_key
from ca_service.store.models import WrappedKeyRow
from tests.helpers import openssl
from tests.softhsm import Token


@pytest.fixture
def settings(make_settings: Any, hsm_token: Token) -> Any:
    return make_settings(wrapping_key_uri=hsm_token.uri("wrapping"))


def test_token_key_wraps_and_binds_its_context(settings: Any, hsm_token: Token) -> None:
    key = ensure_wrapping_key(settings)
    assert key.label.startswith("pkcs11:") and hsm_token.label in key.label
    blob = key.wrap(b"device key bytes", b"7C2F80E0D605|01")
    assert b"device key bytes" not in blob
    assert wrapping_key(settings).unwrap(blob, b"7C2F80E0D605|01") == b"device key bytes"
    with pytest.raises(CAError) as moved:  # a blob moved to another row does not open
        wrapping_key(settings).unwrap(blob, b"7C2F80E0D606|02")
    assert "wrong key or altered data" in moved.value.detail and hsm_token.pin not in moved.value.detail
    assert ensure_wrapping_key(settings).unwrap(blob, b"7C2F80E0D605|01") == b"device key bytes"  # idempotent


def test_token_key_is_sensitive_and_never_extractable(settings: Any, hsm_token: Token) -> None:
    ensure_wrapping_key(settings)
    lib = pkcs11.lib(hsm_token.hsm.module)
    with lib.get_token(token_label=hsm_token.label).open() as session:  # this process is logged in
        secret = session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label="wrapping")
        assert secret[pkcs11.Attribute.SENSITIVE] and not secret[pkcs11.Attribute.EXTRACTABLE]
        with pytest.raises(pkcs11.exceptions.PKCS11Error):
            secret[pkcs11.Attribute.VALUE]


def test_device_key_download_through_the_token_key(
    client: FlaskClient, admin: dict[str, str], services: Any, tmp_path: Path
) -> None:
    """`ca-service init` (here: the services fixture) made the token key; a key made for a device
    is stored wrapped by it and downloads once, matching its certificate."""
    body = client.post("/api/v1/devices/7C2F80E0D605/credentials", json={}, headers=admin).json
    with services.db.read() as session:
        row = session.scalars(select(WrappedKeyRow)).one()
        assert row.kek.startswith("pkcs11:")
    key_pem = client.get(body["key_url"].removeprefix("http://ca.test")).data
    cert_pem = client.get(body["certificate_url"].removeprefix("http://ca.test")).data
    der = serialization.load_pem_private_key(key_pem, None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert der not in row.blob
    (tmp_path / "k.pem").write_bytes(key_pem)
    (tmp_path / "c.pem").write_bytes(cert_pem)
    assert (
        openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout").stdout
        == openssl("x509", "-in", str(tmp_path / "c.pem"), "-noout", "-pubkey").stdout
    )
    with services.db.read() as session:
        assert session.scalars(select(WrappedKeyRow)).all() == []  # gone after the one download


def test_eab_key_sealed_by_the_token_key(services: Any) -> None:
    import base64

    kid, hmac_key = services.acme.create_eab("wrapped-eab", ("7C2F80",))
    raw = base64.urlsafe_b64decode(hmac_key + "=" * (-len(hmac_key) % 4))
    assert services.acme.eab_key(kid).hmac_key == raw
