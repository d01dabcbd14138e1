"""Trust bundle serving rate: gunicorn (2 sync workers) and wrk on loopback, as the service runs.

Compares GET /trust/bundle.pem (today's form, the roots-only form, the JSON document) and 304
revalidations with If-None-Match against the ceiling of GET /ca/root.pem (a PEM from memory)
measured by the same server in the same run. Prints a table; asserts nothing.

    .venv/bin/python bench/trust_bundle.py [--seconds 3] [--rounds 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.crl import wrk
from ca_service import build_services
from ca_service.config import load_settings
from ca_service.domain import SYSTEM
from ca_service.issuers import lifecycle as ca_setup
from ca_service.store.migrate import upgrade
from tests.helpers import LiveServer

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="", help="empty: SQLite under the bench's home")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    settings = load_settings(environ={}, home=home, database_url=args.database_url)
    upgrade(settings.sqlalchemy_url)
    services = build_services(settings)
    ca_setup.initialize(services.db, settings)
    for name, purpose in [
        ("gigaset-net-ca.pem", "gigaset-factory"),
        ("gigaset-tech-root.pem", "gigaset-technologies"),
        ("gigaset-tech-device-ca.pem", "gigaset-technologies"),
    ]:
        services.bundle.add((VECTORS / name).read_bytes(), purpose, name, SYSTEM)
    services.db.dispose()
    env = {"CA_SERVICE_HOME": str(home), "CA_SERVICE_DATABASE_URL": settings.database_url}
    server = LiveServer(env, workers=2).start()
    try:
        base = server.url
        etag = requests.get(base + "/trust/bundle.pem", timeout=10).headers["ETag"]
        roots_etag = requests.get(base + "/trust/bundle.pem?anchors=roots", timeout=10).headers["ETag"]
        paths = [
            ("GET /ca/root.pem (ceiling)", "/ca/root.pem", None),
            ("GET /trust/bundle.pem (5 certificates)", "/trust/bundle.pem", None),
            ("GET /trust/bundle.pem?anchors=roots", "/trust/bundle.pem?anchors=roots", None),
            ("GET /trust/bundle.pem?firmware=2.61", "/trust/bundle.pem?firmware=2.61", None),
            ("GET /trust/bundle.json", "/trust/bundle.json", None),
            ("GET /trust/bundle.pem, If-None-Match -> 304", "/trust/bundle.pem", {"If-None-Match": etag}),
            (
                "GET ...?anchors=roots, If-None-Match -> 304",
                "/trust/bundle.pem?anchors=roots",
                {"If-None-Match": roots_etag},
            ),
        ]
        runs: dict[str, list[float]] = {name: [] for name, _, _ in paths}
        for _ in range(args.rounds):  # interleaved: a noisy machine drifts across the whole run
            for name, path, headers in paths:
                runs[name].append(wrk(base + path, args.seconds, headers))
        rows = [(name, statistics.median(values)) for name, values in runs.items()]
        ceiling = rows[0][1]
    finally:
        server.stop()
    print(
        f"gunicorn, 2 sync workers, wrk -t2 -c8 on loopback, {os.cpu_count()} CPUs, {services.db.dialect}; "
        f"median of {args.rounds} interleaved rounds of {args.seconds} s"
    )
    print(f"{'request':48} {'req/s':>8} {'of ceiling':>10}")
    for name, value in rows:
        print(f"{name:48} {value:8.0f} {value / ceiling:10.0%}")


if __name__ == "__main__":
    main()
