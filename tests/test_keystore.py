"""Key store conformance: every backend (file, pkcs11 on SoftHSM2) creates, loads and signs
certificates and CRLs that the openssl CLI verifies; RFC 7512 URI parsing; PINs stay secret."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from ca_service.authority.ca import create_issuing, create_root, parse_subject
from ca_service.authority.crl import sign_crl
from ca_service.authority.issuer import CaUrls, Issuer, pem
from ca_service.config import Settings, load_settings
from ca_service.domain import KeyType, MacAddress
from ca_service.errors import CAError, Kind
from ca_service.keystore import create_key, display_uri, keystore_for, load_key
from ca_service.keystore.pkcs11 import Pkcs11Uri
from tests.helpers import make_csr, openssl
from tests.softhsm import Token

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


# -- RFC 7512 URIs ------------------------------------------------------------------------------
def test_uri_parts_are_percent_decoded() -> None:
    uri = Pkcs11Uri.parse(
        "pkcs11:token=CA%20Token;object=issuing-2026;id=%01%a2;type=private"
        f"?module-path={MODULE}&pin-source=file:/etc/ca-service/pin"
    )
    assert (uri.token, uri.object, uri.id) == ("CA Token", "issuing-2026", b"\x01\xa2")
    assert uri.module_path == MODULE
    assert uri.pin_source == "file:/etc/ca-service/pin"
    assert uri.label == "pkcs11:token=CA Token;object=issuing-2026;id=%01%a2"


@pytest.mark.parametrize(
    ("uri", "names"),
    [
        (f"pkcs11:token=t;object=k?module-path={MODULE}&pin-value=1234", "pin-source"),
        (f"pkcs11:token=t;object=k;slot-id=3?module-path={MODULE}", "allowed: token"),
        (f"pkcs11:token=t;token=u;object=k?module-path={MODULE}", "appears twice"),
        (f"pkcs11:object=k?module-path={MODULE}", "token=<label>"),
        (f"pkcs11:token=t?module-path={MODULE}", "object=<label>"),
        ("pkcs11:token=t;object=k", "module-path="),
        (f"pkcs11:token=t;object=k;type=public?module-path={MODULE}", "private key"),
        (f"pkcs11:token=t;object=k?module-path={MODULE}&pin-source=https://x", "pin-source is file:"),
    ],
)
def test_bad_uris_are_refused_with_a_reason(uri: str, names: str) -> None:
    with pytest.raises(CAError) as caught:
        Pkcs11Uri.parse(uri).read_pin()
    assert caught.value.kind is Kind.MALFORMED
    assert names in caught.value.detail
    assert "1234" not in caught.value.detail


@given(st.text(max_size=200))
def test_junk_uris_raise_only_caerror(text: str) -> None:
    try:
        Pkcs11Uri.parse("pkcs11:" + text)
    except CAError:
        pass


def test_display_uri_never_shows_a_pin_value() -> None:
    shown = display_uri(f"pkcs11:token=t;object=k?module-path={MODULE}&pin-value=s3cret&pin-source=env:P")
    assert "s3cret" not in shown and shown.endswith(f"?module-path={MODULE}&pin-source=env:P")


def test_unknown_scheme_names_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(CAError, match="use file: or pkcs11:"):
        keystore_for("vault:transit/ca", load_settings(environ={}, home=tmp_path))


def test_pin_from_environment_and_missing_pin_sources(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CA_TEST_PIN", "4321")
    uri = Pkcs11Uri.parse(f"pkcs11:token=t;object=k?module-path={MODULE}&pin-source=env:CA_TEST_PIN")
    assert uri.read_pin() == "4321"
    for source in ("env:CA_TEST_NO_SUCH_PIN", f"file:{tmp_path}/no-such-pin"):
        with pytest.raises(CAError) as caught:
            Pkcs11Uri.parse(f"pkcs11:token=t;object=k?module-path={MODULE}&pin-source={source}").read_pin()
        assert caught.value.kind is Kind.UNAVAILABLE and "pin-source" in caught.value.detail


# -- conformance: every backend -----------------------------------------------------------------
@pytest.fixture
def ks_settings(tmp_path: Path) -> Settings:
    return load_settings(environ={}, home=tmp_path / "home", public_url="http://ca.test")


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_3072])
def test_backend_signs_certificates_and_crls_openssl_verifies(
    key_uri: Callable[[str], str], ks_settings: Settings, tmp_path: Path, key_type: KeyType
) -> None:
    root_key = create_key(key_uri("root"), key_type, ks_settings)
    root = create_root(root_key, parse_subject("/O=Conformance/CN=Root"))
    issuing_key = create_key(key_uri("issuing"), key_type, ks_settings)
    urls = CaUrls.of(ks_settings.public_url, "root")
    issuing = create_issuing(root_key, root, issuing_key.public_key(), parse_subject("/CN=Issuing"), urls)

    # A second process (or worker) loads the key by its URI and signs with it.
    loaded = load_key(key_uri("issuing"), ks_settings)
    assert loaded.public_key() == issuing_key.public_key()
    issuer = Issuer("issuing", issuing, loaded, ks_settings.public_url)
    issuer.self_test()
    _, csr_file = make_csr(tmp_path, "7C2F80C6E5C2")
    csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    leaf = issuer.sign_device_certificate(
        csr.public_key(),  # type: ignore[arg-type]
        MacAddress("7C2F80C6E5C2"),
        ks_settings.profile(None),
        0x1234,
    )
    now = datetime.now(UTC)
    # the CRL as the publisher makes it: assembled from entry DER, signed by the loaded key
    der, _ = sign_crl(
        issuer,
        1,
        now - timedelta(minutes=1),
        now + timedelta(days=1),
        [(0x1234, now - timedelta(minutes=1), None, None)],
    )
    crl = x509.load_der_x509_crl(der)
    (tmp_path / "root.pem").write_text(pem(root))
    (tmp_path / "issuing.pem").write_text(pem(issuing))
    (tmp_path / "chain.pem").write_text(pem(issuing) + pem(root))
    (tmp_path / "leaf.pem").write_text(pem(leaf))
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    verified = openssl(
        "verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "leaf.pem", cwd=tmp_path, check=False
    )
    assert verified.returncode == 0, verified.stderr
    crl_check = openssl("crl", "-in", "crl.pem", "-CAfile", "chain.pem", "-noout", "-verify", cwd=tmp_path)
    assert b"verify OK" in crl_check.stderr + crl_check.stdout
    assert b"Serial Number: 1234" in openssl("crl", "-in", "crl.pem", "-noout", "-text", cwd=tmp_path).stdout
    revoked_check = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        "chain.pem",
        "-CRLfile",
        "crl.pem",
        "leaf.pem",
        cwd=tmp_path,
        check=False,
    )
    assert (
        revoked_check.returncode != 0
        and b"certificate revoked" in revoked_check.stdout + revoked_check.stderr
    )

    with pytest.raises(CAError) as caught:
        create_key(key_uri("issuing"), key_type, ks_settings)
    assert caught.value.kind is Kind.CONFLICT


def test_pkcs11_keys_are_made_sensitive_and_never_extractable(
    hsm_token: Token, ks_settings: Settings
) -> None:
    key = create_key(hsm_token.uri("issuing"), KeyType.EC_P256, ks_settings)
    listing = hsm_token.private_objects()
    assert "label:      issuing" in listing
    assert "sensitive, always sensitive, never extractable, local" in listing
    with pytest.raises(CAError, match="cannot be exported"):
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    assert key.public_key() == load_key(hsm_token.uri("issuing"), ks_settings).public_key()


def test_pkcs11_wrong_pin_is_unavailable_and_never_shown(hsm_token: Token, ks_settings: Settings) -> None:
    hsm_token.pin_file.write_text("wrong-pin-0000\n")
    with pytest.raises(CAError) as caught:
        load_key(hsm_token.uri("issuing"), ks_settings)
    assert caught.value.kind is Kind.UNAVAILABLE
    assert "refused the PIN" in caught.value.detail and "pin-source" in caught.value.detail
    assert "wrong-pin" not in caught.value.detail and hsm_token.pin not in caught.value.detail


def test_pkcs11_missing_key_is_unavailable(hsm_token: Token, ks_settings: Settings) -> None:
    with pytest.raises(CAError) as caught:
        load_key(hsm_token.uri("no-such-key"), ks_settings)
    assert caught.value.kind is Kind.UNAVAILABLE
    assert f"pkcs11:token={hsm_token.label};object=no-such-key" in caught.value.detail
    assert "pin" not in caught.value.detail.lower()


def test_pkcs11_key_signs_in_a_forked_child(hsm_token: Token, ks_settings: Settings) -> None:
    """A worker forked after the parent opened a session re-initialises the module and opens its
    own session (PKCS#11 sessions do not survive a fork); the parent's session keeps working."""
    key = create_key(hsm_token.uri("issuing"), KeyType.EC_P256, ks_settings)
    algorithm = ec.ECDSA(hashes.SHA256())
    key.sign(b"parent", algorithm)
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if it signed through a session of its own
        code = 1
        try:
            link = key._key.link  # type: ignore[attr-defined]
            inherited = link.session
            key.public_key().verify(key.sign(b"child", algorithm), b"child", algorithm)
            own = link.session is not inherited and link.pid == link.module.pid == os.getpid()
            code = 0 if own else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    key.public_key().verify(key.sign(b"parent", algorithm), b"parent", algorithm)


def test_missing_pkcs11_module_is_unavailable(ks_settings: Settings) -> None:
    with pytest.raises(CAError) as caught:
        load_key("pkcs11:token=t;object=k?module-path=/nonexistent/libhsm.so&pin-source=env:X", ks_settings)
    assert (
        caught.value.kind is Kind.UNAVAILABLE
        and "/nonexistent/libhsm.so does not exist" in caught.value.detail
    )
