"""CRLs assembled from entry DER (authority/crl.py) against cryptography's builder on the same
entries: the TBSCertList byte for byte (the whole CRL with a deterministic RSA signature),
readable by cryptography, accepted by ``openssl crl -verify``, and clean under pkilint."""

from __future__ import annotations

import secrets
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ca_service.authority.crl import assemble_crl, entry_der, sign_crl
from ca_service.authority.issuer import Issuer

NOW = datetime(2026, 12, 2, 1, 0, 0, tzinfo=UTC)
REASONS = [None, *(f for f in x509.ReasonFlags if f is not x509.ReasonFlags.unspecified)]


def make_issuer(tmp: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Issuer:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Issuing CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp / "issuer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issuer("issuing-test", cert, key, "http://ca.example")


def make_entries(n: int) -> list[tuple[int, datetime, x509.ReasonFlags | None, datetime | None]]:
    """Serials of every length up to 159 bits, dates from 1950 to 2060 (UTCTime and
    GeneralizedTime), with microseconds, naive and aware, every reason, some invalidity dates."""
    out = []
    for i in range(n):
        serial = int.from_bytes(secrets.token_bytes(20), "big") >> (1 + i % 150) or 1
        at = NOW - timedelta(seconds=i * 7919, microseconds=i) if i % 5 else NOW + timedelta(days=i % 12000)
        if i % 11 == 0:
            at = at.replace(tzinfo=None)
        invalidity = at - timedelta(hours=3) if i % 4 == 0 else None
        out.append((serial, at, REASONS[i % len(REASONS)], invalidity))
    return out


def builder_crl(  # type: ignore[no-untyped-def]
    issuer: Issuer, entries, number: int, this_update: datetime = NOW, next_update: datetime | None = None
) -> x509.CertificateRevocationList:
    """The reference: cryptography's builder, the list passed at once."""
    revoked = []
    for serial, at, reason, invalidity in entries:
        b = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
        if reason is not None:
            b = b.add_extension(x509.CRLReason(reason), critical=False)
        if invalidity is not None:
            b = b.add_extension(x509.InvalidityDate(invalidity.replace(tzinfo=None)), critical=False)
        revoked.append(b.build())
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(issuer.crl_url)],
        relative_name=None,
        only_contains_user_certs=True,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
        .issuer_name(issuer.certificate.subject)
        .last_update(this_update)
        .next_update(next_update or this_update + timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(issuer.aki, critical=False)
        .add_extension(idp, critical=True)
    )
    return builder.sign(issuer.key, issuer.hash)


@pytest.fixture(scope="module")
def ec_issuer(tmp_path_factory: pytest.TempPathFactory) -> Issuer:
    return make_issuer(tmp_path_factory.mktemp("ec"), ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def rsa_issuer(tmp_path_factory: pytest.TempPathFactory) -> Issuer:
    return make_issuer(tmp_path_factory.mktemp("rsa"), rsa.generate_private_key(65537, 2048))


@pytest.mark.parametrize("n", [0, 1, 10, 10_000])
def test_same_bytes_as_the_builder(ec_issuer: Issuer, rsa_issuer: Issuer, n: int) -> None:
    entries = make_entries(n)
    for issuer in (ec_issuer, rsa_issuer):
        ours, count = sign_crl(issuer, 7, NOW, NOW + timedelta(days=1), entries)
        reference = builder_crl(issuer, entries, 7)
        crl = x509.load_der_x509_crl(ours)
        assert count == n and len(crl) == n
        assert crl.tbs_certlist_bytes == reference.tbs_certlist_bytes
        assert crl.signature_algorithm_oid == reference.signature_algorithm_oid
        assert crl.is_signature_valid(issuer.certificate.public_key())  # type: ignore[arg-type]
        if isinstance(issuer.key, rsa.RSAPrivateKey):  # PKCS#1 v1.5 is deterministic: every byte
            assert ours == reference.public_bytes(serialization.Encoding.DER)


def test_entry_encoding_is_the_builders(ec_issuer: Issuer) -> None:
    """Each stored entry is exactly one element of the builder's revokedCertificates."""
    entries = make_entries(300)
    ders = [entry_der(*e) for e in entries]
    der, count = assemble_crl(
        ec_issuer,
        1,
        NOW,
        NOW + timedelta(days=1),
        [(100, b"".join(ders[:100]))] + [(1, d) for d in ders[100:]],
    )
    assert count == 300
    assert b"".join(ders) in bytes(der)
    assert b"".join(ders) in builder_crl(ec_issuer, entries, 1).tbs_certlist_bytes


def test_root_crl_without_idp(ec_issuer: Issuer) -> None:
    crl = x509.load_der_x509_crl(sign_crl(ec_issuer, 3, NOW, NOW + timedelta(days=365), [], False)[0])
    assert len(crl) == 0 and crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3
    with pytest.raises(x509.ExtensionNotFound):
        crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)


def test_openssl_verifies_and_pkilint_is_silent(ec_issuer: Issuer, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    entries = [(e[0], min(e[1].replace(tzinfo=UTC), now), *e[2:]) for e in make_entries(10_000)]
    entries = [(s, at, r, inv and min(inv.replace(tzinfo=UTC), at)) for s, at, r, inv in entries]
    der, _ = sign_crl(ec_issuer, 12, now, now + timedelta(days=1), entries)
    (tmp_path / "crl.der").write_bytes(der)
    out = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "crl.der"),
            "-noout",
            "-verify",
            "-CAfile",
            str(Path(ec_issuer_path(ec_issuer, tmp_path))),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "verify OK" in out.stderr + out.stdout
    assert pkilint_findings(der) == []


def pkilint_findings(der: bytes) -> list[str]:
    """What pkilint's ``lint_crl lint -t CRL -p PKIX`` reports (RFC 5280), every severity."""
    from pkilint import loader, pkix
    from pkilint.pkix import crl, extension, name

    validator = crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
        ],
    )
    document = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
    results = validator.validate(document.root)
    return [f"{r.validator}: {f}" for r in results for f in r.finding_descriptions]


def ec_issuer_path(issuer: Issuer, tmp: Path) -> Path:
    path = tmp / "ca.pem"
    path.write_bytes(issuer.certificate.public_bytes(serialization.Encoding.PEM))
    return path
