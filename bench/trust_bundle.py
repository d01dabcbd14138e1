"""Trust bundle serving rate, in-process (Flask test client, one core, SQLite).

Compares GET /trust/bundle.pem (database read of the anchors + our CAs, render, SHA-256 ETag) and
a 304 revalidation against the ceiling of GET /ca/root.pem (a PEM from memory) measured in the same
run. Prints a table; asserts nothing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ca_service import build_services, create_app
from ca_service.config import load_settings
from ca_service.domain import SYSTEM
from ca_service.issuers import lifecycle as ca_setup
from ca_service.store.migrate import upgrade

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors"
N = 2000


def rate(client, path: str, headers: dict[str, str] | None = None, status: int = 200) -> float:
    assert client.get(path, headers=headers).status_code == status
    start = time.perf_counter()
    for _ in range(N):
        client.get(path, headers=headers)
    return N / (time.perf_counter() - start)


def main() -> None:
    home = Path(tempfile.mkdtemp())
    settings = load_settings(environ={}, home=home)
    upgrade(settings.sqlalchemy_url)
    services = build_services(settings)
    ca_setup.initialize(services.db, settings)
    for name, purpose in [
        ("gigaset-net-ca.pem", "gigaset-factory"),
        ("gigaset-tech-root.pem", "gigaset-technologies"),
        ("gigaset-tech-device-ca.pem", "gigaset-technologies"),
    ]:
        services.bundle.add((VECTORS / name).read_bytes(), purpose, name, SYSTEM)
    client = create_app(settings).test_client()
    etag = client.get("/trust/bundle.pem").headers["ETag"]
    ceiling = rate(client, "/ca/root.pem")
    rows = [
        ("GET /ca/root.pem (ceiling)", ceiling),
        ("GET /trust/bundle.pem (5 certificates)", rate(client, "/trust/bundle.pem")),
        ("GET /trust/bundle.pem?firmware=2.61", rate(client, "/trust/bundle.pem?firmware=2.61")),
        ("GET /trust/bundle.json", rate(client, "/trust/bundle.json")),
        (
            "GET /trust/bundle.pem, If-None-Match -> 304",
            rate(client, "/trust/bundle.pem", {"If-None-Match": etag}, 304),
        ),
    ]
    print(f"{'request':48} {'req/s':>8} {'of ceiling':>10}")
    for name, value in rows:
        print(f"{name:48} {value:8.0f} {value / ceiling:10.0%}")


if __name__ == "__main__":
    main()
