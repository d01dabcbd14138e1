"""Signatures per second through each key store backend beside the raw in-process key (the ceiling),
measured in the same run, for ECDSA P-256 and RSA-3072; and whole device certificates per second.

    .venv/bin/python bench/keystore.py [--seconds 1.0]

The pkcs11 rows use SoftHSM2 with a token made in a temporary folder (softhsm2-util must be
installed). One process, one core: a figure is a ratio to the ceiling, never an absolute.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding

from ca_service.authority.ca import create_issuing, create_root, parse_subject
from ca_service.authority.issuer import CaUrls, Issuer, signature_hash
from ca_service.config import load_settings
from ca_service.domain import KeyType, MacAddress, SigningKey
from ca_service.keystore import create_key, load_key

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
MESSAGE = secrets.token_bytes(400)  # about the size of a device certificate's TBS


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up (opens the PKCS#11 session, finds the key)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        done += 1
    return done / elapsed


def signer(key: SigningKey) -> Callable[[], bytes]:
    algorithm = signature_hash(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return lambda: key.sign(MESSAGE, ec.ECDSA(algorithm))
    return lambda: key.sign(MESSAGE, padding.PKCS1v15(), algorithm)


def certifier(key: SigningKey, settings: object) -> Callable[[], x509.Certificate]:
    root_key = KeyType.EC_P384.generate()
    root = create_root(root_key, parse_subject("/CN=Bench Root"))
    urls = CaUrls.of("http://127.0.0.1:8000", "root")
    issuing = create_issuing(root_key, root, key.public_key(), parse_subject("/CN=Bench Issuing"), urls)
    issuer = Issuer("bench", issuing, key, "http://ca.bench")
    device_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    profile = settings.profile(None)  # type: ignore[attr-defined]
    mac = MacAddress("7C2F80C6E5C2")
    return lambda: issuer.sign_device_certificate(device_key, mac, profile, 0x1234)


def softhsm_uri(root: Path) -> Callable[[str], str] | None:
    module = next((m for m in MODULES if Path(m).is_file()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        return None
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = secrets.token_hex(8)
    (root / "pin").write_text(pin)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "so" + pin, "--pin", pin],
        check=True,
        capture_output=True,
    )
    return lambda name: (
        f"pkcs11:token=bench;object={name}?module-path={module}&pin-source=file:{root / 'pin'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per cell")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = load_settings(environ={}, home=root / "home", key_passphrase=secrets.token_hex(16))
        pkcs11_uri = softhsm_uri(root)
        rows = []
        for key_type in (KeyType.EC_P256, KeyType.RSA_3072):
            keys: dict[str, SigningKey] = {"raw in-process": key_type.generate()}
            create_key(f"file:keys/{key_type.value}.pem", key_type, settings)
            keys["file:"] = load_key(f"file:keys/{key_type.value}.pem", settings)
            if pkcs11_uri:
                create_key(pkcs11_uri(key_type.value), key_type, settings)
                keys["pkcs11: (SoftHSM2)"] = load_key(pkcs11_uri(key_type.value), settings)
            ceiling_sig = ceiling_cert = 0.0
            for backend, key in keys.items():
                sig = rate(signer(key), args.seconds)
                cert = rate(certifier(key, settings), args.seconds)
                if backend == "raw in-process":
                    ceiling_sig, ceiling_cert = sig, cert
                rows.append((key_type.value, backend, sig, sig / ceiling_sig, cert, cert / ceiling_cert))
        print(
            f"{'key':9} {'backend':20} {'signatures/s':>13} {'ratio':>6} {'certificates/s':>15} {'ratio':>6}"
        )
        for kt, backend, sig, sig_ratio, cert, cert_ratio in rows:
            print(f"{kt:9} {backend:20} {sig:13.0f} {sig_ratio:6.2f} {cert:15.0f} {cert_ratio:6.2f}")
        if pkcs11_uri is None:
            print("pkcs11 rows skipped: softhsm2 is not installed (apt-get install softhsm2)")


if __name__ == "__main__":
    main()
