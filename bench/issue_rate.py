"""Certificates issued per second through POST /api/v1/certificates under gunicorn, beside the
in-process ceiling measured in the same run (parse CSR + verify + build + sign + PEM; no HTTP,
no database), and beside the floor of the stack (bench/stack_floor.py: the same durable rows
through the same gunicorn, Flask and SQLAlchemy Core, none of the service around them).

    .venv/bin/python bench/issue_rate.py [--seconds 10] [--connections 16] [--workers 2]
                                         [--db sqlite|postgresql]

Needs `wrk` (Debian package). Every counted certificate is a committed row: the figure is the
number of rows in the database after the run divided by the run time, cross-checked against
wrk's count of 201 answers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ca_service import build_services  # noqa: E402
from ca_service.authority import random_serial  # noqa: E402
from ca_service.config import load_settings  # noqa: E402
from ca_service.domain import Principal, Role  # noqa: E402
from ca_service.enrollment.tokens import create_token  # noqa: E402
from ca_service.issuers import lifecycle as ca_setup  # noqa: E402
from ca_service.policy import CsrRules, check_csr  # noqa: E402
from ca_service.store.migrate import upgrade  # noqa: E402
from tests.helpers import LiveServer  # noqa: E402


def device_csr(mac: str = "7C2F80C6E5C2") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mac)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def ceiling_worker(args: tuple[str, str, str, float]) -> int:
    """Issuance crypto only, for ``seconds``: what one core can do at most."""
    home, url, csr, seconds = args
    settings = load_settings(environ={}, home=Path(home), database_url=url)
    services = build_services(settings)
    _, issuer = services.signers.active()
    profile = settings.profile("device")
    rules = CsrRules()
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        facts = check_csr(csr, rules)
        cert = issuer.sign_device_certificate(facts.public_key, facts.mac, profile, random_serial())
        cert.public_bytes(serialization.Encoding.PEM)
        done += 1
    return done


def count_rows(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM certificates")).scalar_one())
    engine.dispose()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    opts = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ca-bench-"))
    pg_name = None
    if opts.db == "postgresql":
        pg_name = f"ca_bench_{os.getpid()}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite:///{home}/ca.db"
    settings = load_settings(environ={}, home=home, database_url=url)
    upgrade(url)
    services = build_services(settings)
    ca_setup.initialize(services.db, settings)
    token = create_token(services.db, name="bench", role="admin")
    csr = device_csr()
    services.enrollment.issue(csr, Principal("warmup", Role.ADMIN))

    # 1. ceilings: one core, then every core in parallel
    one = ceiling_worker((str(home), url, csr, opts.seconds / 2)) / (opts.seconds / 2)
    cores = multiprocessing.cpu_count()
    with multiprocessing.Pool(cores) as pool:
        all_cores = sum(pool.map(ceiling_worker, [(str(home), url, csr, opts.seconds / 2)] * cores)) / (
            opts.seconds / 2
        )

    # 2. the service, then the floor of the stack, under gunicorn, loaded by wrk
    env = {"CA_SERVICE_HOME": str(home), "CA_SERVICE_DATABASE_URL": url, "CA_SERVICE_LOG_LEVEL": "WARNING"}
    script = home / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps({'csr': csr}))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    try:
        service = load(LiveServer(env, workers=opts.workers), script, url, opts)
        floor = load(
            LiveServer(env, workers=opts.workers, app="bench.stack_floor:floor_app()"), script, url, opts
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if pg_name:
            services.db.dispose()
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    print(
        f"\nissuance benchmark ({opts.db}, {opts.workers} gunicorn workers, "
        f"wrk {opts.connections} connections, "
        f"{int(opts.seconds)} s, ECDSA P-256 issuing key, P-256 CSR)"
    )
    print(f"{'measure':<58}{'per second':>12}{'ratio':>8}")
    print(f"{'ceiling: issuance crypto in-process, one core':<58}{one:>12.0f}{1.0:>8.2f}")
    print(
        f"{f'ceiling: issuance crypto in-process, all {cores} cores':<58}"
        f"{all_cores:>12.0f}{all_cores / one:>8.2f}"
    )
    for label, (durable, answers, failed, rows, elapsed) in (
        ("POST /api/v1/certificates, committed rows", service),
        ("floor of the stack (bench/stack_floor.py), committed rows", floor),
    ):
        print(f"{label:<58}{durable:>12.0f}{durable / one:>8.2f}")
        print(f"   ({answers} answers, {failed} not 2xx, {rows} rows committed, wall {elapsed:.1f} s)")
    print(f"   service / all-core ceiling = {service[0] / all_cores:.2f}")
    print(f"   floor / all-core ceiling = {floor[0] / all_cores:.2f}")
    print(f"   service / floor = {service[0] / floor[0]:.2f}")


def load(
    server: LiveServer, script: Path, url: str, opts: argparse.Namespace
) -> tuple[float, int, int, int, float]:
    """wrk against ``server``: (committed rows per second, answers, answers not 2xx, rows, wall)."""
    server.start()
    try:
        before = count_rows(url)
        started = time.perf_counter()
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{opts.connections}",
                f"-d{int(opts.seconds)}s",
                "-s",
                str(script),
                server.url + "/api/v1/certificates",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        elapsed = time.perf_counter() - started
        time.sleep(0.5)
        rows = count_rows(url) - before
    finally:
        server.stop()
    m = re.search(r"(\d+) requests in ([\d.]+)s", out)
    answers, wrk_seconds = int(m.group(1)), float(m.group(2))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rows / wrk_seconds, answers, int(non2xx.group(1)) if non2xx else 0, rows, elapsed


if __name__ == "__main__":
    main()
