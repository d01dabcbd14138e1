"""CRL benchmark: build time and size at 10k/100k/1M revoked entries, beside cryptography's bare
CRL builder on the same entries in the same run (the ceiling); the peak RSS of a fresh process
that builds the CRL; one revocation request at that CRL size; served CRL requests per second
(gunicorn, 2 workers, wrk) beside a small static PEM, and the workers' memory after serving it.

The rows are inserted as a database from before migration 0014 holds them (no stored entry):
'first build' encodes every entry once, in bulk; 'from DB' is every later build, end to end
(pending revocations read and encoded, entries streamed from the database, CRL assembled,
signed, stored).

    .venv/bin/python bench/crl.py [--sizes 10000,100000,1000000] [--no-wrk] [--database-url URL]

Figures are reported, never asserted; compare the ratios (shared/measurements.md).
"""

from __future__ import annotations

import argparse
import json
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
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ca_service import Services, build_services, create_app
from ca_service.authority.crl import sign_crl
from ca_service.config import load_settings
from ca_service.domain import Principal, Role
from ca_service.enrollment.tokens import create_token
from ca_service.issuers import lifecycle as ca_setup
from ca_service.store.migrate import upgrade
from ca_service.store.models import CertificateRow
from tests.helpers import LiveServer, make_csr
from tests.test_crl_der import builder_crl

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


def wrk(url: str, seconds: int = 5, headers: dict[str, str] | None = None) -> float:
    """Requests per second of ``wrk -t2 -c8`` against ``url`` (0: some answer was not 2xx/3xx)."""
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", *extra, url], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:  # a failing server is not a fast one
        print(f"  ({errors.group(1)} non-2xx responses from {url}: figure void)", file=sys.stderr)
        return 0.0
    return float(match.group(1)) if match else 0.0


def worker_rss_mb(master: int) -> list[float]:
    """Resident memory of each gunicorn worker (the master's children), in MB."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [status_kib("VmRSS", int(pid)) / 1024 for pid in children]


def status_kib(field: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def build_in_fresh_process(home: Path, public_url: str, database_url: str) -> dict[str, float]:
    """Regenerate the active issuer's CRL in a new process (as a gunicorn worker would) and
    report its time and RSS: before the build (services and key loaded) and its peak (VmHWM)."""
    root = str(Path(__file__).resolve().parents[1])
    code = (
        f"import sys, json; sys.path.insert(0, {root!r}); import bench.crl as b; "
        f"print(json.dumps(b.regenerate_here({str(home)!r}, {public_url!r}, {database_url!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.splitlines()[-1]))


def regenerate_here(home: str, public_url: str, database_url: str) -> dict[str, float]:
    settings = load_settings(environ={}, home=Path(home), public_url=public_url, database_url=database_url)
    services = build_services(settings)
    issuer_id, _ = services.signers.active()  # the key loaded (its KDF's memory peak is not the CRL's)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from the current RSS
    before = status_kib("VmRSS")
    t = time.perf_counter()
    services.revocation.regenerate(issuer_id)
    seconds = time.perf_counter() - t
    peak = status_kib("VmHWM")
    return {"seconds": seconds, "rss_before_mb": before / 1024, "rss_peak_mb": peak / 1024}


def vacuum(services: Services) -> None:
    """VACUUM ANALYZE the certificates (PostgreSQL): the first build rewrote every row, and
    until a vacuum sets the visibility map an index-only scan reads the heap for each entry
    (7-8 s instead of ~1.5 s at a million). Autovacuum does the same in a running service."""
    with services.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) certificates")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--no-wrk", action="store_true")
    parser.add_argument(
        "--database-url", default="", help="e.g. postgresql://postgres@127.0.0.1/bench (empty: SQLite)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-crl-"))
    settings = load_settings(
        environ={}, home=work / "home", public_url="http://127.0.0.1", database_url=args.database_url
    )
    settings.home.mkdir(parents=True)
    upgrade(settings.sqlalchemy_url)
    setup = build_services(settings)
    ca_setup.initialize(setup.db, settings)
    setup.db.dispose()
    app = create_app(settings)
    services = app.extensions["ca_service"]  # one Database per process, as in a worker
    issuer_id, issuer = services.signers.active()
    client = app.test_client()
    admin = {"Authorization": "Bearer " + create_token(services.db, name="bench", role="admin")}
    _, csr = make_csr(work, "7C2F80ABCDEF")
    actor = Principal(name="bench", role=Role.ADMIN)

    backend = services.db.dialect
    print(f"CRL with a P-256 issuing key, {backend}, {os.cpu_count()} CPUs; times in seconds\n")
    header = (
        f"{'entries':>9} {'bare build':>10} {'first build':>11} {'from DB':>8} {'ratio':>6} "
        f"{'fresh proc':>10} {'RSS MB':>11} {'CRL MB':>7} {'revoke ms':>9} {'CRL req/s':>9} "
        f"{'worker MB':>10} {'same TBS':>9}"
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
        reference = builder_crl(issuer, pool, 1, now, now + timedelta(days=1))
        t_bare = time.perf_counter() - t
        ours, _ = sign_crl(issuer, 1, now, now + timedelta(days=1), pool)  # same entries, from DER
        same = x509.load_der_x509_crl(ours).tbs_certlist_bytes == reference.tbs_certlist_bytes
        del reference, ours
        t = time.perf_counter()
        services.revocation.regenerate(issuer_id)  # encodes the entries of the rows just inserted
        t_first = time.perf_counter() - t
        if backend == "postgresql":  # the steady state: autovacuum has seen the bulk writes above
            vacuum(services)
        timings = []
        for _ in range(10):
            serial = services.enrollment.issue(csr.read_bytes(), actor).serial
            t = time.perf_counter()
            r = client.post(
                f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"}, headers=admin
            )
            timings.append(time.perf_counter() - t)
            assert r.status_code == 200, r.json
        t = time.perf_counter()
        services.revocation.regenerate(issuer_id)  # the 10 revocations: read, encoded, published
        t_db = time.perf_counter() - t
        fresh = build_in_fresh_process(settings.home, settings.public_url, settings.database_url)
        crl = services.revocation.published(issuer.name)
        assert len(x509.load_der_x509_crl(crl.der)) == n + 10 * (sizes.index(n) + 1)
        rps, served_rss = 0.0, 0.0
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
                for _ in range(4):  # both workers serve both forms (the files are written once)
                    for form in (url, url.removesuffix(".crl") + ".pem"):
                        subprocess.run(["curl", "-s", "-o", "/dev/null", form], check=True)
                rps = wrk(url)
                served_rss = max(worker_rss_mb(server.proc.pid))  # type: ignore[union-attr]
                if ceiling is None:
                    ceiling = wrk(f"{server.url}/ca/root.pem")
            finally:
                server.stop()
        rss = f"{fresh['rss_before_mb']:.0f}->{fresh['rss_peak_mb']:.0f}"
        print(
            f"{n:>9} {t_bare:>10.2f} {t_first:>11.2f} {t_db:>8.2f} {t_db / t_bare:>6.2f} "
            f"{fresh['seconds']:>10.2f} {rss:>11} {len(crl.der) / 1e6:>7.1f} "
            f"{statistics.median(timings) * 1000:>9.1f} {rps:>9.0f} {served_rss:>10.0f} "
            f"{'yes' if same else 'NO':>9}"
        )
    if ceiling is not None:
        print(f"\nceiling: GET /ca/root.pem (small PEM) through the same gunicorn: {ceiling:.0f} req/s")
    print("bare build: cryptography's CertificateRevocationListBuilder on the same entries (the ceiling);")
    print("same TBS: our CRL assembled from entry DER over those entries is its TBSCertList byte for byte.")
    print("first build: the CRL after the rows were inserted without stored entries (a database from")
    print("before migration 0014), every entry encoded once. from DB: a later build end to end (rows")
    print("read, CRL assembled, signed, stored; on PostgreSQL after a VACUUM ANALYZE, as autovacuum")
    print("leaves it); ratio = from DB / bare build. fresh proc: the same in")
    print("a new process, RSS MB before the build (services loaded) -> its peak. revoke ms: one POST")
    print(".../revoke (median of 10) with that many entries in the CRL: no rebuild inside the request.")
    print("worker MB: the largest resident memory of the 2 gunicorn workers after each served the CRL")
    print("as DER and PEM (the CRL itself is sent from a file of the host, not held by the workers).")


if __name__ == "__main__":
    main()
