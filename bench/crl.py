"""CRL benchmark: build time and size at 10k/100k/1M revoked entries, beside cryptography's bare
CRL builder on the same entries in the same run; one revocation request at that CRL size; served
CRL requests per second (gunicorn, 2 workers, wrk) beside a small static PEM.

    .venv/bin/python bench/crl.py [--sizes 10000,100000,1000000] [--no-wrk] [--database-url URL]

Figures are reported, never asserted; compare the ratios (shared/measurements.md).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ca_service import build_services, create_app
from ca_service.authority.crl import sign_crl
from ca_service.config import load_settings
from ca_service.domain import Principal, Role
from ca_service.enrollment.tokens import create_token
from ca_service.issuers import lifecycle as ca_setup
from ca_service.store.migrate import upgrade
from ca_service.store.models import CertificateRow
from tests.helpers import LiveServer, make_csr

REASONS = [
    x509.ReasonFlags.key_compromise,
    x509.ReasonFlags.superseded,
    x509.ReasonFlags.cessation_of_operation,
]
NAMES = {
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
}


def entries(n: int) -> list[tuple[int, datetime, x509.ReasonFlags, None]]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        (
            int.from_bytes(secrets.token_bytes(20), "big") >> 1 or 1,
            now - timedelta(seconds=i),
            REASONS[i % 3],
            None,
        )
        for i in range(n)
    ]


def bare(issuer, rows, this_update, next_update) -> bytes:  # type: ignore[no-untyped-def]
    """cryptography's builder as its documentation shows it, the list passed at once."""
    revoked = [
        x509.RevokedCertificateBuilder()
        .serial_number(s)
        .revocation_date(d)
        .add_extension(x509.CRLReason(r), critical=False)
        .build()
        for s, d, r, _ in rows
    ]
    builder = (
        x509.CertificateRevocationListBuilder(
            issuer_name=issuer.certificate.subject,
            last_update=this_update,
            next_update=next_update,
            revoked_certificates=revoked,
        )
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(issuer.aki, critical=False)
    )
    return builder.sign(issuer.key, issuer.hash).public_bytes(serialization.Encoding.DER)


def fill(services, issuer_id: int, rows) -> None:  # type: ignore[no-untyped-def]
    """Insert revoked certificate rows (Core executemany, batches of 20k)."""
    now = datetime.now(UTC)
    batch = []
    for i, (serial, revoked_at, reason, _) in enumerate(rows):
        batch.append(
            {
                "serial": format(serial, "X"),
                "issuer_id": issuer_id,
                "mac": f"7C2F80{i % 0xFFFFFF:06X}",
                "profile": "device",
                "key_type": "ec-p256",
                "not_before": now - timedelta(days=1),
                "not_after": now + timedelta(days=365),
                "status": "revoked",
                "revoked_at": revoked_at,
                "revocation_reason": NAMES[reason],
                "fingerprint_sha256": "0" * 64,
                "der": b"",
                "created_by": "bench",
                "created_at": now,
            }
        )
        if len(batch) == 20_000:
            with services.db.write() as session:
                session.execute(insert(CertificateRow), batch)
            batch = []
    if batch:
        with services.db.write() as session:
            session.execute(insert(CertificateRow), batch)


def wrk(url: str, seconds: int = 5) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:  # a failing server is not a fast one
        print(f"  ({errors.group(1)} non-2xx responses from {url}: figure void)", file=sys.stderr)
        return 0.0
    return float(match.group(1)) if match else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--no-wrk", action="store_true")
    parser.add_argument(
        "--database-url", default="", help="e.g. postgresql://postgres@127.0.0.1/bench (empty)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-crl-"))
    settings = load_settings(
        environ={}, home=work / "home", public_url="http://127.0.0.1", database_url=args.database_url
    )
    settings.home.mkdir(parents=True)
    upgrade(settings.sqlalchemy_url)
    services = build_services(settings)
    ca_setup.initialize(services.db, settings)
    issuer_id, issuer = services.signers.active()
    app = create_app(settings)
    client = app.test_client()
    admin = {"Authorization": "Bearer " + create_token(services.db, name="bench", role="admin")}
    _, csr = make_csr(work, "7C2F80ABCDEF")
    actor = Principal(name="bench", role=Role.ADMIN)

    backend = services.db.dialect
    print(f"CRL with a P-256 issuing key, {backend}, {os.cpu_count()} CPUs; times in seconds\n")
    header = (
        f"{'entries':>9} {'bare build':>10} {'ours build':>10} {'ratio':>6} {'ours from DB':>12} "
        f"{'DB ratio':>8} {'CRL MB':>7} {'revoke ms':>9} {'CRL req/s':>9}"
    )
    print(header)
    pool: list[tuple[int, datetime, x509.ReasonFlags, None]] = []
    ceiling = None
    for n in sizes:
        rows = entries(n - len(pool))
        fill(services, issuer_id, rows)
        pool += rows
        now = datetime.now(UTC).replace(microsecond=0)
        t = time.perf_counter()
        bare_der = bare(issuer, pool, now, now + timedelta(days=1))
        t_bare = time.perf_counter() - t
        t = time.perf_counter()
        ours_der, _ = sign_crl(issuer, 1, now, now + timedelta(days=1), pool)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        services.revocation.regenerate(issuer_id)
        t_db = time.perf_counter() - t
        timings = []
        for _ in range(10):
            serial = services.enrollment.issue(csr.read_bytes(), actor).serial
            t = time.perf_counter()
            r = client.post(
                f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"}, headers=admin
            )
            timings.append(time.perf_counter() - t)
            assert r.status_code == 200, r.json
        services.revocation.publish_due()  # so that the server's publishers find nothing due
        rps = 0.0
        if not args.no_wrk:
            server = LiveServer(
                {
                    "CA_SERVICE_HOME": str(settings.home),
                    "CA_SERVICE_PUBLIC_URL": settings.public_url,
                    "CA_SERVICE_DATABASE_URL": settings.database_url,
                },
                workers=2,
            ).start()
            try:
                url = f"{server.url}/crl/{issuer.name}.crl"
                subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True)  # warm the worker caches
                rps = wrk(url)
                if ceiling is None:
                    ceiling = wrk(f"{server.url}/ca/root.pem")
            finally:
                server.stop()
        ratios = f"{t_ours / t_bare:>6.2f} {t_db:>12.2f} {t_db / t_bare:>8.2f}"
        print(
            f"{n:>9} {t_bare:>10.2f} {t_ours:>10.2f} {ratios} "
            f"{len(bare_der) / 1e6:>7.1f} {statistics.median(timings) * 1000:>9.1f} {rps:>9.0f}"
        )
        assert abs(len(ours_der) - len(bare_der)) < 200 + n // 1000  # same entries, same size (IDP aside)
    if ceiling is not None:
        print(f"\nceiling: GET /ca/root.pem (small PEM) through the same gunicorn: {ceiling:.0f} req/s")
    print(
        "ratio = ours / bare builder on the same entries; 'ours from DB' streams the rows from the database,"
    )
    print("builds, signs and stores (the background publisher's work). revoke ms: one POST .../revoke")
    print("(median of 10) with that many entries in the CRL: no rebuild inside the request.")


if __name__ == "__main__":
    main()
