"""Capture the certificate chain a device presents in a TLS handshake (RFC 8446 section 4.4.2,
RFC 5246 section 7.4.6), so an operator learns which CA to import.

Python's ``ssl`` module cannot do this before Python 3.13: it verifies a client certificate against
loaded CAs (an unknown one aborts the handshake), has no verify callback, and ``getpeercert()``
returns only the leaf (``get_unverified_chain()`` exists from 3.13 only). pyOpenSSL (PyCA, already
installed with the ACME client library) exposes OpenSSL's verify callback, which we make accept
everything, and ``get_peer_cert_chain()``, which returns every certificate the client sent.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from ca_service.bundle.anchors import fingerprint
from ca_service.errors import CAError, Kind

HANDSHAKE_TIMEOUT = 15  # seconds
REPLY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 35\r\nConnection: close\r\n\r\n"
    b"ca-service trust capture: recorded\n"
)


@dataclass(frozen=True)
class Presented:
    """What one client sent: its address and its certificates, leaf first (empty: none)."""

    peer: str
    chain: list[x509.Certificate]
    error: str | None = None


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CAError(Kind.MALFORMED, f"'{text[:60]}' is not HOST:PORT, e.g. 127.0.0.1:8443.")
    return host.strip("[]"), int(port)


def self_signed(host: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A throw-away P-256 server certificate for the capture server (1 day)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca-service trust capture")])
    now = datetime.now(UTC)
    san: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        san.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        san.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def server_context(cert_file: Path | None, key_file: Path | None, host: str) -> SSL.Context:
    """A TLS server context that requests a client certificate and accepts any (or none)."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    if cert_file and key_file:
        context.use_certificate_chain_file(str(cert_file))
        context.use_privatekey_file(str(key_file))
    else:
        cert, key = self_signed(host)
        context.use_certificate(cert)
        context.use_privatekey(key)
    context.check_privatekey()
    context.set_verify(SSL.VERIFY_PEER, lambda _conn, _cert, _errno, _depth, _ok: True)
    return context


@contextmanager
def listening(listen: str, cert_file: Path | None, key_file: Path | None) -> Iterator[Capture]:
    """A capture server listening on ``listen`` (HOST:PORT) with its TLS context; the socket
    is closed when the block ends."""
    host, port = parse_listen(listen)
    context = server_context(cert_file, key_file, host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as exc:
            raise CAError(Kind.UNAVAILABLE, f"Cannot listen on {host}:{port}: {exc.strerror}.") from exc
        listener.listen(8)
        yield Capture(context, listener, f"{host}:{port}")


@dataclass(frozen=True)
class Capture:
    context: SSL.Context
    listener: socket.socket
    address: str

    def serve(self, count: int | None) -> Iterator[Presented]:
        """Accept connections and yield what each client presented; stop after ``count``
        handshakes (None: until interrupted)."""
        seen = 0
        while count is None or seen < count:
            raw, address = self.listener.accept()
            seen += 1
            yield _handshake(self.context, raw, f"{address[0]}:{address[1]}")


def _handshake(context: SSL.Context, raw: socket.socket, peer: str) -> Presented:
    # pyOpenSSL wants a blocking socket (a Python timeout makes it non-blocking): bound the wait
    # with the kernel's receive timeout instead
    raw.setblocking(True)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", HANDSHAKE_TIMEOUT, 0))
    tls = SSL.Connection(context, raw)
    tls.set_accept_state()
    try:
        tls.do_handshake()
        leaf = tls.get_peer_certificate(as_cryptography=True)
        sent = tls.get_peer_cert_chain(as_cryptography=True) or []
        chain = ([leaf] if leaf is not None else []) + [c for c in sent if leaf is None or c != leaf]
        try:
            tls.recv(4096)  # the device's request, if any: answer it so that it logs a clear failure
            tls.sendall(REPLY)
            tls.shutdown()
        except (SSL.Error, OSError):
            pass
        return Presented(peer, chain)
    except (SSL.Error, OSError) as exc:
        return Presented(peer, [], f"TLS handshake failed: {exc}")
    finally:
        raw.close()


def sha1_fingerprint(cert: x509.Certificate) -> str:
    """SHA-1 fingerprint, lowercase hex: what older tools and device UIs show; identification only."""
    return cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - a name for the certificate, not a check


def save(presented: Presented, out: Path) -> list[Path]:
    """Write each certificate to ``out`` as PEM (``<sha256 prefix>-<depth>.pem``) and the whole
    chain as ``<leaf sha256 prefix>-chain.pem``. Returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for depth, cert in enumerate(presented.chain):
        path = out / f"{fingerprint(presented.chain[0])[:16]}-{depth}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.append(path)
    if presented.chain:
        chain = out / f"{fingerprint(presented.chain[0])[:16]}-chain.pem"
        chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in presented.chain))
        files.append(chain)
    return files
