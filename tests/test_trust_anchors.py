"""Import checks of trust anchors (pure functions), on CA certificates made by the openssl CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ca_service.bundle.anchors import check_anchor, load_certificates
from ca_service.errors import CAError, Kind
from tests.helpers import openssl
from tests.trust_helpers import vector


def made(tmp: Path, name: str, *args: str) -> Path:
    out = tmp / f"{name}.pem"
    openssl(*args, "-out", str(out))
    return out


def load_one(path: Path):
    return load_certificates(path.read_bytes())[0]


def test_weak_root_is_a_warning(tmp_path: Path) -> None:
    root = made(
        tmp_path, "weak", "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", str(tmp_path / "w.key"),
        "-subj", "/CN=Weak Root", "-days", "30", "-sha1",
    )  # fmt: skip
    facts = check_anchor(load_one(root), datetime.now(UTC))
    assert facts.self_signed
    assert any("Weak rsa key of 1024 bits" in w for w in facts.warnings)
    assert any("sha1WithRSAEncryption" in w for w in facts.warnings)
    assert any("Expires within 90 days" in w for w in facts.warnings)


def test_weak_intermediates_are_refused(tmp_path: Path) -> None:
    key = tmp_path / "sub.key"
    csr = made(
        tmp_path, "sub", "req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", str(key),
        "-subj", "/CN=Weak Sub",
    )  # fmt: skip
    ext = tmp_path / "ca.ext"
    ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
    root_key = tmp_path / "root.key"
    root = made(
        tmp_path, "root", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(root_key),
        "-subj", "/CN=Good Root", "-days", "30",
    )  # fmt: skip
    sub = made(
        tmp_path, "subcert", "x509", "-req", "-in", str(csr), "-CA", str(root), "-CAkey", str(root_key),
        "-set_serial", "7", "-days", "30", "-sha256", "-extfile", str(ext),
    )  # fmt: skip
    with pytest.raises(CAError) as weak:
        check_anchor(load_one(sub), datetime.now(UTC))
    assert weak.value.kind is Kind.BAD_KEY and "Intermediate CA refused" in weak.value.detail
    good_csr = made(
        tmp_path, "sub2", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "s2.key"),
        "-subj", "/CN=SHA1 Sub",
    )  # fmt: skip
    sha1 = made(
        tmp_path, "sha1sub", "x509", "-req", "-in", str(good_csr), "-CA", str(root), "-CAkey", str(root_key),
        "-set_serial", "8", "-days", "30", "-sha1", "-extfile", str(ext),
    )  # fmt: skip
    with pytest.raises(CAError) as hashed:
        check_anchor(load_one(sha1), datetime.now(UTC))
    assert hashed.value.kind is Kind.BAD_SIGNATURE_ALGORITHM and "SHA-1" in hashed.value.detail


def test_v1_self_signed_root_is_a_ca_and_a_v1_leaf_is_not(tmp_path: Path) -> None:
    key = tmp_path / "v1.key"
    csr = made(
        tmp_path,
        "v1csr",
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-subj",
        "/CN=V1",
    )
    root = made(tmp_path, "v1", "x509", "-req", "-in", str(csr), "-key", str(key), "-days", "30")
    assert "Version: 1 (0x0)" in openssl("x509", "-in", str(root), "-noout", "-text").stdout.decode()
    assert check_anchor(load_one(root), datetime.now(UTC)).self_signed
    leaf_csr = made(
        tmp_path, "leafcsr", "req", "-new", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(tmp_path / "l.key"), "-subj", "/CN=7C2F80C6E5C7",
    )  # fmt: skip
    leaf = made(
        tmp_path, "leaf", "x509", "-req", "-in", str(leaf_csr), "-CA", str(root), "-CAkey", str(key),
        "-set_serial", "9", "-days", "30",
    )  # fmt: skip
    with pytest.raises(CAError) as refused:
        check_anchor(load_one(leaf), datetime.now(UTC))
    assert refused.value.kind is Kind.BAD_CERTIFICATE


def test_gigaset_stand_ins_are_clean_anchors() -> None:
    for name in ("gigaset-net-ca.pem", "gigaset-tech-root.pem"):
        assert check_anchor(load_one(vector(name)), datetime.now(UTC)).warnings == ()
    assert "Gigaset.net" in check_anchor(load_one(vector("gigaset-net-ca.pem")), datetime.now(UTC)).subject


@given(st.binary(max_size=300))
def test_junk_never_raises_anything_but_caerror(data: bytes) -> None:
    for blob in (data, b"-----BEGIN CERTIFICATE-----\n" + data + b"\n-----END CERTIFICATE-----\n"):
        try:
            for cert in load_certificates(blob):
                check_anchor(cert, datetime.now(UTC))
        except CAError:
            pass
