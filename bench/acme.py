"""Complete ACME orders per second (new order, finalize, download) against ca-service, against
the floor of its stack (bench/acme_floor.py) and against Let's Encrypt's pebble, driven by the
same certbot-acme client code in the same run.

    .venv/bin/python bench/acme.py [--seconds 10] [--clients 1,8] [--database-url postgresql://...]

ca-service runs under gunicorn (sync workers) on SQLite in a temporary home unless a database
URL is given; the floor runs through the same gunicorn configuration on the same database;
pebble runs with PEBBLE_VA_ALWAYS_VALID=1 on loopback with a throw-away TLS certificate. Server
CPU per order is the CPU time of the server's processes (from /proc) divided by the completed
orders. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# This file is named acme.py: keep its folder off the path so that certbot's acme package loads.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import josepy as jose  # noqa: E402
from acme import client, messages  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import LiveServer, free_port, self_signed  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


# -- the client (identical for both servers) ----------------------------------------------------
@dataclass(frozen=True)
class Target:
    directory: str
    verify: str | bool
    eab: tuple[str, str] | None  # (kid, hmac_key)
    name: str  # "mac" -> CN is a device MAC; "dns" -> CN is a DNS name (pebble's policy)


def csr_for(key: ec.EllipticCurvePrivateKey, target: Target) -> bytes:
    if target.name == "mac":
        cn = "7C2F80" + secrets.token_hex(3).upper()
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        )
    else:
        dns = f"d{secrets.token_hex(4)}.example.com"
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def complete_order(acme: client.ClientV2, csr: bytes) -> str:
    """newOrder, answer pending authorizations (pebble), finalize, poll, download."""
    order = acme.new_order(csr)
    for authz in order.authorizations:
        if authz.body.status != messages.STATUS_VALID:
            chall = next(c for c in authz.body.challenges if c.chall.typ == "http-01")
            acme.answer_challenge(chall, chall.response(acme.net.key))
            while acme.poll(authz)[0].body.status != messages.STATUS_VALID:
                time.sleep(0.02)
    response = acme._post(order.body.finalize, messages.CertificateRequest(csr=x509.load_pem_x509_csr(csr)))
    body = response.json()
    while body["status"] != "valid":
        if body["status"] == "invalid":
            raise RuntimeError(f"order invalid: {body}")
        time.sleep(0.02)
        body = acme._post_as_get(order.uri).json()
    return acme._post_as_get(body["certificate"]).text


def worker(target: Target, seconds: float, queue: Any) -> None:
    try:
        run_client(target, seconds, queue)
    except Exception as exc:  # the parent reports it instead of waiting for a client that died
        queue.put(f"client failed: {exc!r}")
        raise


def run_client(target: Target, seconds: float, queue: Any) -> None:
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = client.ClientNetwork(key, alg=jose.ES256, verify_ssl=target.verify, user_agent="bench")
    acme = client.ClientV2(client.ClientV2.get_directory(target.directory, net), net)
    eab = None
    if target.eab:
        eab = messages.ExternalAccountBinding.from_data(
            account_public_key=key.public_key(),
            kid=target.eab[0],
            hmac_key=target.eab[1],
            directory=acme.directory,
        )
    acme.new_account(
        messages.NewRegistration.from_data(terms_of_service_agreed=True, external_account_binding=eab)
    )
    csr_key = ec.generate_private_key(ec.SECP256R1())
    for _ in range(3):  # warm up: workers load the issuing key and connect on first use
        complete_order(acme, csr_for(csr_key, target))
    done = 0
    queue.put("ready")
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        assert "BEGIN CERTIFICATE" in complete_order(acme, csr_for(csr_key, target))
        done += 1
    queue.put(done)


# -- server CPU from /proc ------------------------------------------------------------------------
def tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split()
        for child in children:
            pids.extend(tree(int(child)))
    return pids


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError):
            pass
    return total / TICK


def measure(
    target: Target, server_pid: int, clients: int, seconds: float, eabs: list[tuple[str, str]] | None
) -> tuple[float, float]:
    queue: Any = mp.Queue()
    procs = []
    for i in range(clients):
        t = Target(target.directory, target.verify, eabs[i] if eabs else None, target.name)
        procs.append(mp.Process(target=worker, args=(t, seconds, queue)))
    for p in procs:
        p.start()
    for _ in procs:
        ready = queue.get(timeout=120)
        if ready != "ready":
            raise RuntimeError(ready)
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    orders = 0
    for _ in procs:
        done = queue.get(timeout=seconds + 120)
        if not isinstance(done, int):
            raise RuntimeError(done)
        orders += done
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(server_pid) - cpu0
    for p in procs:
        p.join()
    return orders / elapsed, 1000 * cpu / max(orders, 1)


# -- servers ---------------------------------------------------------------------------------------
def start_ours(tmp: Path, database_url: str | None, workers: int) -> tuple[LiveServer, LiveServer, Any]:
    """The service and the floor of its stack (bench/acme_floor.py) on one home and database."""
    from bench import acme_floor
    from ca_service import build_services
    from ca_service.config import load_settings
    from ca_service.issuers import lifecycle as ca_setup
    from ca_service.store.migrate import upgrade

    home = tmp / "home"
    home.mkdir()
    settings = load_settings(environ={}, home=home, database_url=database_url or "")
    upgrade(settings.sqlalchemy_url)
    services = build_services(settings)
    ca_setup.initialize(services.db, settings)
    acme_floor.create_tables(services.db)
    env = {
        "CA_SERVICE_HOME": str(home),
        "CA_SERVICE_DATABASE_URL": database_url or "",
        "CA_SERVICE_LOG_LEVEL": "WARNING",
    }
    floor = LiveServer(env, workers=workers, app="bench.acme_floor:floor_app()")
    return LiveServer(env, workers=workers).start(), floor.start(), services


def start_pebble(tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    key, cert = tmp / "pebble.key", tmp / "pebble.pem"
    self_signed(key, cert, "/CN=127.0.0.1", ext=("subjectAltName=IP:127.0.0.1",))
    port = free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{free_port()}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "retryAfter": {"authz": 1, "order": 1},
        }
    }
    (tmp / "pebble.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "PEBBLE_VA_ALWAYS_VALID": "1",
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
    }
    proc = subprocess.Popen(
        ["pebble", "-config", str(tmp / "pebble.json")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}/dir"
    import requests

    for _ in range(100):
        try:
            requests.get(url, verify=str(cert), timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    return proc, url, cert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        server, floor, services = start_ours(tmp, args.database_url, args.workers)
        proc, pebble_url, pebble_cert = start_pebble(tmp)
        try:
            ours = Target(server.url + "/acme/directory", True, None, "mac")
            bare = Target(floor.url + "/acme/directory", True, None, "mac")
            peb = Target(pebble_url, str(pebble_cert), None, "dns")
            for n in counts:
                eabs = [services.acme.create_eab(f"bench-{n}-{i}", ("7C2F80",)) for i in range(n)]
                rate, cpu = measure(ours, server.proc.pid, n, args.seconds, eabs)  # type: ignore[union-attr]
                frate, fcpu = measure(bare, floor.proc.pid, n, args.seconds, None)  # type: ignore[union-attr]
                prate, pcpu = measure(peb, proc.pid, n, args.seconds, None)
                rows.append((n, rate, cpu, frate, fcpu, prate, pcpu))
        finally:
            server.stop()
            floor.stop()
            proc.terminate()
            proc.wait(10)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"ACME complete orders (newOrder+finalize+download), {args.seconds:.0f} s each, "
        f"ca-service: gunicorn {args.workers} sync workers on {backend}; pebble with PEBBLE_VA_ALWAYS_VALID=1"
    )
    print("clients | orders/s: service  floor  pebble | CPU ms/order: service  floor  pebble")
    for n, rate, cpu, frate, fcpu, prate, pcpu in rows:
        print(f"{n:>7} | {rate:>17.1f} {frate:>6.1f} {prate:>7.1f} | {cpu:>21.1f} {fcpu:>6.1f} {pcpu:>7.1f}")
    print("clients | orders/s service/pebble | CPU service/pebble  floor/pebble  service/floor")
    for n, rate, cpu, _, fcpu, prate, pcpu in rows:
        ratios = f"{cpu / pcpu:>18.2f} {fcpu / pcpu:>13.2f} {cpu / fcpu:>14.2f}"
        print(f"{n:>7} | {rate / prate:>24.2f} | {ratios}")


if __name__ == "__main__":
    main()
