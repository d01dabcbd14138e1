"""Provisioning figures against ceilings measured in the same run (SQLite, one process).

1. Keys made for devices: ``Credentials.create`` (P-256 key, certificate, wrap, three rows and
   audit in one transaction) against bare key generation + certificate signing in process, and
   against CSR issuance through ``Enrollment.issue`` (the same commit path, without key/URLs).
2. Key downloads: ``Credentials.download("key")`` (lookup, claim, unwrap, delete, audit) against
   unwrapping + PEM encoding alone.
3. Bulk import: ``Devices.import_csv`` of 10,000 rows against one Core executemany insert of the
   same rows.
Run: .venv/bin/python bench/provisioning.py [credentials] [devices]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from sqlalchemy import insert

from ca_service import build_services
from ca_service.config import load_settings
from ca_service.domain import SYSTEM, KeyType, MacAddress
from ca_service.issuers import lifecycle as ca_setup
from ca_service.store.migrate import upgrade
from ca_service.store.models import DeviceRow, utcnow


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def main() -> None:
    n_cred = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    n_dev = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    home = Path(tempfile.mkdtemp(prefix="bench-prov-"))
    settings = load_settings(environ={}, home=home)
    upgrade(settings.sqlalchemy_url)
    services = build_services(settings)
    ca_setup.initialize(services.db, settings)
    _, issuer = services.signers.active()
    profile = settings.profile(None)
    services.credentials.wrapping_key()  # unseal once (scrypt) outside the timings

    t = time.perf_counter()
    for i in range(n_cred):
        key = KeyType.EC_P256.generate()
        issuer.sign_device_certificate(key.public_key(), MacAddress(f"7C2F80{i:06X}"), profile, i + 1)
    ceiling_create = time.perf_counter() - t
    csrs = [
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"7C2F84{i:06X}")]))
        .sign(KeyType.EC_P256.generate(), hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        for i in range(n_cred)
    ]
    t = time.perf_counter()
    for csr in csrs:
        services.enrollment.issue(csr, SYSTEM)
    csr_issue = time.perf_counter() - t
    t = time.perf_counter()
    deliveries = [services.credentials.create(f"7C2F81{i:06X}", SYSTEM) for i in range(n_cred)]
    ours_create = time.perf_counter() - t

    wrapping = services.credentials.wrapping_key()
    der = KeyType.EC_P256.generate()
    blob = wrapping.wrap(
        der.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        b"ctx",
    )
    t = time.perf_counter()
    for _ in range(n_cred):
        key = serialization.load_der_private_key(wrapping.unwrap(blob, b"ctx"), None)
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    ceiling_download = time.perf_counter() - t
    t = time.perf_counter()
    for d in deliveries:
        services.credentials.download("key", d.key_url.rsplit("/", 1)[1], None)
    ours_download = time.perf_counter() - t

    rows = [f"7C2F82{i:06X},N870 IP PRO,83.V2.65.0,site-{i % 7}" for i in range(n_dev)]
    t = time.perf_counter()
    with services.db.write() as session:
        now = utcnow()
        session.execute(
            insert(DeviceRow),
            [
                {
                    "mac": f"7C2F83{i:06X}",
                    "model": "N870 IP PRO",
                    "firmware": "83.V2.65.0",
                    "labels": {"site": "x"},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n_dev)
            ],
        )
    ceiling_import = time.perf_counter() - t
    t = time.perf_counter()
    report = services.devices.import_csv(SYSTEM, ["mac,model,firmware,site", *rows])
    ours_import = time.perf_counter() - t
    assert report.created == n_dev
    t = time.perf_counter()
    services.devices.import_csv(SYSTEM, ["mac,model,firmware,site", *rows])
    ours_reimport = time.perf_counter() - t

    print(f"{'measure':<46} {'ours':>10} {'ceiling':>10} {'ratio':>6}")
    for name, n, ours, ceiling in (
        (f"make key + certificate (P-256), n={n_cred}", n_cred, ours_create, ceiling_create),
        (f"  vs CSR issuance with commit, n={n_cred}", n_cred, ours_create, csr_issue),
        (f"key download, n={n_cred}", n_cred, ours_download, ceiling_download),
        (f"CSV import, new devices, n={n_dev}", n_dev, ours_import, ceiling_import),
        (f"CSV import, unchanged re-run, n={n_dev}", n_dev, ours_reimport, ceiling_import),
    ):
        print(f"{name:<46} {rate(n, ours):>10} {rate(n, ceiling):>10} {ceiling / ours:>6.2f}")
    services.db.dispose()


if __name__ == "__main__":
    main()
