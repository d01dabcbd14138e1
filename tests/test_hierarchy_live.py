"""Relying parties that require revocation data for every CA in the path, against gunicorn with
two workers: pyhanko-certvalidator in ``require`` mode (it fetches CRLs and OCSP itself),
``openssl verify -crl_download -crl_check_all`` (CRLs from the URLs inside the certificates
only), GnuTLS ``ocsptool --load-trust`` (responder named by name), Debian's nginx with ``ssl_crl`` fed
from the served root and issuing CRLs, and pkilint over what the hierarchy publishes.

One hierarchy for all: issuing CA A signs ``doomed``; a rotation makes B, which signs ``good``
and ``bad``; ``bad`` is revoked; then the root revokes A (``issuer revoke``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from asn1crypto import x509 as asn1
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathValidationError, RevokedError
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from ca_service import Services, build_services
from ca_service.domain import Principal, Role
from ca_service.issuers import lifecycle
from tests.helpers import LiveServer, free_port, make_csr, openssl
from tests.nginx import Nginx

pytestmark = [
    pytest.mark.slow,  # gunicorn, nginx, ocsptool
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

ADMIN = Principal(name="test-admin", role=Role.ADMIN)
DER = serialization.Encoding.DER


@dataclass
class Hierarchy:
    svc: Services
    server: LiveServer
    tmp: Path
    root: Path  # the trust anchor, PEM
    revoked_ca: str  # A's name
    active_ca: str  # B's name

    def cert(self, name: str) -> Path:
        return self.tmp / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.tmp / f"{name}.key"

    def ca(self, name: str) -> Path:
        path = self.tmp / f"{name}.pem"
        path.write_text(self.svc.directory.get().by_name(name).pem)
        return path


def _issue(svc: Services, tmp: Path, mac: str, name: str) -> str:
    _, csr = make_csr(tmp, mac, name=name)
    cert = svc.enrollment.issue(csr.read_bytes(), ADMIN)
    (tmp / f"{name}.crt").write_text(cert.certificate_pem)
    return cert.serial


@pytest.fixture
def hierarchy(make_settings, tmp_path: Path) -> Iterator[Hierarchy]:
    port = free_port()
    settings = make_settings(public_url=f"http://127.0.0.1:{port}", ocsp_responder_id="name")
    svc = build_services(settings)
    lifecycle.initialize(svc.db, settings)
    svc.revocation.publish_due()  # as 'ca-service init' does
    first = svc.directory.get().require_active().name
    _issue(svc, tmp_path, "7C2F80000031", "doomed")
    lifecycle.rotate(svc.db, settings)
    svc.directory.invalidate()
    second = svc.directory.get().require_active().name
    _issue(svc, tmp_path, "7C2F80000032", "good")
    bad = _issue(svc, tmp_path, "7C2F80000033", "bad")
    svc.revocation.revoke(bad, "keyCompromise", None, ADMIN)
    revoked = svc.revocation.revoke_issuer(first, "cACompromise")
    assert revoked.in_root_crl
    svc.revocation.publish_due()
    root = tmp_path / "root.pem"
    root.write_text(svc.directory.get().root.pem)
    env = {
        "CA_SERVICE_HOME": str(settings.home),
        "CA_SERVICE_DATABASE_URL": settings.database_url,
        "CA_SERVICE_KDF_COST": settings.kdf_cost,
        "CA_SERVICE_TEST_ONLY_SETTINGS": "true",
        "CA_SERVICE_OCSP_RESPONDER_ID": "name",
    }
    server = LiveServer(env, workers=2, port=port)
    try:
        yield Hierarchy(svc, server.start(), tmp_path, root, first, second)
    finally:
        server.stop()
        svc.db.dispose()


BOTH = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_AND_OCSP_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_REQUIRED,
    )
)


def _validate(h: Hierarchy, name: str, policy: CertRevTrustPolicy | None = None) -> None:
    """pyhanko-certvalidator with revocation data required for every certificate of the path
    (``require`` mode, or ``policy``), fetched by itself: the issuing CA through the device
    certificate's AIA caIssuers, CRLs and OCSP from the URLs in the certificates."""
    anchor = asn1.Certificate.load(x509.load_pem_x509_certificate(h.root.read_bytes()).public_bytes(DER))
    leaf = asn1.Certificate.load(x509.load_pem_x509_certificate(h.cert(name).read_bytes()).public_bytes(DER))
    context = ValidationContext(
        trust_roots=[anchor],
        allow_fetching=True,
        **({"revinfo_policy": policy} if policy else {"revocation_mode": "require"}),
        fetcher_backend=RequestsFetcherBackend(),  # plain HTTP GETs, no session left open
    )
    validator = CertificateValidator(leaf, validation_context=context)
    asyncio.run(validator.async_validate_usage({"digital_signature"}, {"client_auth"}))


def test_pyhanko_requires_revocation_data_for_the_whole_path(hierarchy: Hierarchy) -> None:
    _validate(hierarchy, "good")
    _validate(hierarchy, "good", BOTH)  # the device's CRL and OCSP answer, the root CRL
    with pytest.raises(RevokedError):
        _validate(hierarchy, "bad")
    with pytest.raises(PathValidationError, match=r"(?i)revoked"):
        _validate(hierarchy, "doomed")


def test_openssl_verify_with_crls_from_the_certificates(hierarchy: Hierarchy) -> None:
    """``-crl_check_all`` with only the CRLs found at the cRLDistributionPoints URLs of the leaf
    and of its issuing CA (the root CRL also covers the self-signed root, which openssl checks
    too and which names no distribution point)."""
    h = hierarchy

    def verify(name: str, issuing: str) -> subprocess.CompletedProcess[bytes]:
        crls = h.tmp / f"crls-{name}.pem"
        crls.write_bytes(b"".join(_crls_named_in(path) for path in (h.cert(name), h.ca(issuing))))
        args = ["verify", "-crl_check_all", "-CAfile", str(h.root), "-CRLfile", str(crls)]
        return openssl(*args, "-untrusted", str(h.ca(issuing)), str(h.cert(name)), check=False)

    good = verify("good", h.active_ca)
    assert good.returncode == 0 and b": OK" in good.stdout, good
    bad = verify("bad", h.active_ca)
    assert bad.returncode != 0 and b"certificate revoked" in bad.stdout + bad.stderr
    doomed = verify("doomed", h.revoked_ca)
    out = doomed.stdout + doomed.stderr
    assert doomed.returncode != 0 and b"certificate revoked" in out and b"1 depth" in out, out


def _crls_named_in(cert_file: Path) -> bytes:
    """The CRLs at every cRLDistributionPoints URL of a certificate, fetched over HTTP, PEM."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    urls = [
        n.value for p in points for n in p.full_name or () if isinstance(n, x509.UniformResourceIdentifier)
    ]
    assert urls
    out = b""
    for url in urls:
        response = requests.get(url, timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/pkix-crl"
        out += x509.load_der_x509_crl(response.content).public_bytes(serialization.Encoding.PEM)
    return out


def test_gnutls_ocsptool_trusts_responses_named_by_name(hierarchy: Hierarchy) -> None:
    """ocsptool asks the responder in the certificate's AIA and verifies the response against
    a trust list holding the issuing CA: with ResponderID byName it finds the signer."""
    h = hierarchy
    issuing = h.ca(h.active_ca)
    for name, status in (("good", "good"), ("bad", "revoked")):
        args = ["ocsptool", "--ask", "--load-cert", str(h.cert(name)), "--load-issuer", str(issuing)]
        result = subprocess.run([*args, "--load-trust", str(issuing)], capture_output=True, timeout=30)
        out = (result.stdout + result.stderr).decode()
        assert result.returncode == 0 and "Verifying OCSP Response: Success" in out, out
        assert f"Certificate Status: {status}" in out, out


def test_nginx_checks_root_and_issuing_crls(hierarchy: Hierarchy) -> None:
    h = hierarchy
    cas = h.svc.directory.get()
    crls = b"".join(
        requests.get(f"{h.server.url}/crl/{name}.pem", timeout=10).content
        for name in (cas.root.name, h.revoked_ca, h.active_ca)
    )
    assert crls.count(b"BEGIN X509 CRL") == 3
    (h.tmp / "crls.pem").write_bytes(crls)
    (h.tmp / "cas.pem").write_text(
        h.ca(h.active_ca).read_text() + h.ca(h.revoked_ca).read_text() + cas.root.pem
    )
    _issue(h.svc, h.tmp, "7C2F800000AB", "server")
    (h.tmp / "server-chain.pem").write_text(h.cert("server").read_text() + h.ca(h.active_ca).read_text())
    nginx = Nginx(
        h.tmp,
        server_cert=h.tmp / "server-chain.pem",
        server_key=h.key("server"),
        client_ca=h.tmp / "cas.pem",
        crl=h.tmp / "crls.pem",
    )
    try:
        assert nginx.get(h.cert("good"), h.key("good")) == (200, "hello CN=7C2F80000032\n")
        assert nginx.get(h.cert("bad"), h.key("bad"))[0] == 400
        assert nginx.get(h.cert("doomed"), h.key("doomed"))[0] == 400
    finally:
        nginx.stop()
    assert nginx.error_log.read_text().count("certificate revoked") == 2


def _pkilint(tool: str, *args: str) -> None:
    """pkilint's command-line linter: no finding of WARNING or worse."""
    result = subprocess.run([str(Path(sys.executable).parent / tool), "lint", "-s", "WARNING", *args],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0 and not result.stdout.strip(), (tool, args, result.stdout, result.stderr)


def test_pkilint_finds_the_hierarchy_well_formed(hierarchy: Hierarchy) -> None:
    """The issuing CA certificates with their CRL distribution point and caIssuers, the root CRL
    (an ARL: it lists CA certificates), an issuing CRL and an OCSP response named by name."""
    h = hierarchy
    for name in (h.active_ca, h.revoked_ca):
        _pkilint("lint_pkix_cert", str(h.ca(name)))
    root = h.svc.directory.get().root.name
    for name, kind in ((root, "ARL"), (h.active_ca, "CRL")):
        path = h.tmp / f"{name}.crl"
        path.write_bytes(requests.get(f"{h.server.url}/crl/{name}.crl", timeout=10).content)
        _pkilint("lint_crl", "-t", kind, "-p", "PKIX", str(path))
    leaf = x509.load_pem_x509_certificate(h.cert("good").read_bytes())
    issuing = x509.load_pem_x509_certificate(h.ca(h.active_ca).read_bytes())
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuing, hashes.SHA1()).build()
    answer = requests.post(
        f"{h.server.url}/ocsp",
        data=request.public_bytes(DER),
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    assert ocsp.load_der_ocsp_response(answer.content).responder_name == issuing.subject
    (h.tmp / "good.ocsp").write_bytes(answer.content)
    _pkilint("lint_ocsp_response", str(h.tmp / "good.ocsp"))
