"""The checked-in CSRs of tests/vectors/csr/ and what the policy must make of each (recipes in
tests/vectors/README.md, made by make-csrs.sh): read by the pure policy tests and, for a few, by
the REST refusal tests."""

from __future__ import annotations

from pathlib import Path

from ca_service.errors import Kind

VECTORS = Path(__file__).parent / "vectors"
CSRS = VECTORS / "csr"
MAC = "7C2F80C6E5C2"

ACCEPTED = {  # file: (MAC, key type)
    "ok-p256-sha256.csr": (MAC, "ec-p256"),
    "faq-n870-rsa4096.csr": (MAC, "rsa-4096"),
    "faq-n870-p256.csr": (MAC, "ec-p256"),
    "ok-p256-sha256.der": (MAC, "ec-p256"),
    "ok-new-pem-label.csr": (MAC, "ec-p256"),
    "ok-p384-sha384.csr": (MAC, "ec-p384"),
    "ok-rsa2048-sha256.csr": (MAC, "rsa-2048"),
    "ok-rsa2048-pss-sha512.csr": (MAC, "rsa-2048"),
    "ok-asks-for-ca.csr": (MAC, "ec-p256"),  # CA:TRUE, a DNS SAN and O=Evil are not policy's business
}

REFUSED = {  # file: (kind, words of the detail)
    "sha1-rsa2048.csr": (Kind.BAD_SIGNATURE_ALGORITHM, "signed with SHA1"),
    "sha1-p256.csr": (Kind.BAD_SIGNATURE_ALGORITHM, "signed with SHA1"),
    "md5-rsa2048.csr": (Kind.BAD_SIGNATURE_ALGORITHM, "signed with MD5"),
    "key-rsa1024.csr": (Kind.BAD_KEY, "RSA keys shorter than 2048 bits are refused (this one has 1024)"),
    "key-p521.csr": (Kind.BAD_KEY, "Elliptic curve P-521 is refused; allowed curves: P-256, P-384"),
    "key-k256.csr": (Kind.BAD_KEY, "Elliptic curve secp256k1 is refused"),
    "key-ed25519.csr": (Kind.BAD_KEY, "Ed25519 keys are refused"),
    "key-dsa2048.csr": (Kind.BAD_KEY, "DSA keys are refused"),
    "cn-einstein2.csr": (Kind.BAD_IDENTIFIER, "generic Gigaset factory name"),
    "cn-missing.csr": (Kind.BAD_IDENTIFIER, "The CSR names no device"),
    "cn-twice.csr": (Kind.BAD_IDENTIFIER, "The CSR names two devices"),
    "cn-zero-mac.csr": (Kind.BAD_IDENTIFIER, "all-zero MAC"),
    "cn-broadcast-mac.csr": (Kind.BAD_IDENTIFIER, "broadcast MAC"),
    "cn-multicast-mac.csr": (Kind.BAD_IDENTIFIER, "01005E0000FB is a multicast address"),
    "cn-hostname.csr": (Kind.BAD_IDENTIFIER, "'provisioning.example.com' is not a device MAC"),
    "cn-short-mac.csr": (Kind.BAD_IDENTIFIER, "'7C2F80C6E5' is not a device MAC"),
    "broken-signature.csr": (Kind.BAD_CSR, "does not verify with its own public key"),
    "bad-version.csr": (Kind.BAD_CSR, "only PKCS#10 version 1 requests"),
}


def read(name: str) -> bytes:
    return (CSRS / name).read_bytes()
