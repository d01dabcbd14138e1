"""Test helpers: the real openssl CLI, CSRs made by it, an ASN.1 reading of certificates that
does not go through cryptography, free ports, a live gunicorn server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import requests
from pyasn1.codec.der import decoder
from pyasn1_modules import rfc4043, rfc5280

REPO = Path(__file__).resolve().parents[1]


def openssl(
    *args: str, input: bytes | None = None, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the real openssl CLI."""
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=check, cwd=cwd)


def self_signed(
    key: Path, cert: Path, subject: str, *, curve: str = "P-256", days: int = 1, ext: tuple[str, ...] = ()
) -> Path:
    """An EC key and a self-signed certificate made by the openssl CLI (a stand-in root, a test
    server); ``ext`` are -addext values such as ``subjectAltName=IP:127.0.0.1``."""
    args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{curve}", "-nodes"]
    args += ["-keyout", str(key), "-subj", subject, "-days", str(days), "-out", str(cert)]
    for value in ext:
        args += ["-addext", value]
    openssl(*args)
    return cert


def make_key(path: Path, kind: str = "ec-p256") -> Path:
    """A private key made by the openssl CLI: ec-p256, ec-p384, ec-p521, rsa-<bits>, ed25519."""
    if kind.startswith("ec-"):
        curve = {
            "ec-p256": "prime256v1",
            "ec-p384": "secp384r1",
            "ec-p521": "secp521r1",
            "ec-k256": "secp256k1",
        }[kind]
        openssl("ecparam", "-genkey", "-name", curve, "-noout", "-out", str(path))
    elif kind.startswith("rsa-"):
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{kind[4:]}", "-out", str(path))
    elif kind == "ed25519":
        openssl("genpkey", "-algorithm", "ed25519", "-out", str(path))
    elif kind == "dsa-2048":
        params = path.with_suffix(".params")
        openssl(
            "genpkey",
            "-genparam",
            "-algorithm",
            "DSA",
            "-pkeyopt",
            "dsa_paramgen_bits:2048",
            "-out",
            str(params),
        )
        openssl("genpkey", "-paramfile", str(params), "-out", str(path))
    else:
        raise ValueError(kind)
    return path


def make_csr(
    tmp: Path,
    cn: str | None,
    kind: str = "ec-p256",
    digest: str = "sha256",
    name: str = "dev",
    san: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """Key and CSR made by the openssl CLI, as the FAQ's workflow does. Returns (key, csr).

    ``cn`` None makes an empty subject; ``san`` are subjectAltName entries in openssl's
    notation (``DNS:7C2F80C6E5C2``, ``IP:10.0.0.1``), as certbot's and Caddy's CSRs carry them."""
    key = make_key(tmp / f"{name}.key", kind)
    csr = tmp / f"{name}.csr"
    subject = "/" if cn is None else f"/CN={cn}"
    args = ["req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr)]
    if san:
        args += ["-addext", "subjectAltName=" + ",".join(san)]
    if kind != "ed25519":
        args.insert(2, f"-{digest}")
    openssl(*args)
    return key, csr


def version2_csr(tmp: Path, cn: str = "7C2F80C6E5C2") -> Path:
    """A correctly self-signed CSR whose version field is 1 ("version 2"; RFC 2986 section 4.1
    knows only 0): an openssl-made RSA CSR in DER with the version octet changed and the
    CertificationRequestInfo signed again by ``openssl dgst -sign``. Returns the DER file."""
    key, csr = make_csr(tmp, cn, "rsa-2048", name="v2")
    der = bytearray(openssl("req", "-in", str(csr), "-outform", "DER").stdout)

    def header(at: int) -> tuple[int, int]:  # (start of contents, length) of the DER TLV at ``at``
        first = der[at + 1]
        if first < 0x80:
            return at + 2, first
        width = first & 0x7F
        return at + 2 + width, int.from_bytes(der[at + 2 : at + 2 + width], "big")

    info_at, _ = header(0)
    version_at, info_length = header(info_at)
    assert der[version_at : version_at + 3] == b"\x02\x01\x00"  # INTEGER 0
    der[version_at + 2] = 1
    info = bytes(der[info_at : version_at + info_length])
    signature = openssl("dgst", "-sha256", "-sign", str(key), input=info).stdout
    assert len(signature) == 256 and der[-257] == 0  # BIT STRING: no unused bits, then 256 octets
    der[-256:] = signature
    out = tmp / "v2.der"
    out.write_bytes(bytes(der))
    return out


def csr_signature_algorithms(csr: Path) -> list[str]:
    """The signature algorithm names that ``openssl req -text`` prints for a CSR."""
    text = openssl("req", "-in", str(csr), "-noout", "-text").stdout.decode()
    return re.findall(r"Signature Algorithm: (\S+)", text)


def permanent_identifiers(certificate_pem: str) -> list[tuple[str, str | None]]:
    """The RFC 4043 PermanentIdentifier otherNames in the SAN of the first certificate in
    ``certificate_pem``, as (identifierValue, assigner OID or None): the certificate, the SAN
    extension and each value are DER-decoded with pyasn1's RFC 5280 and RFC 4043 modules, and a
    decoding that leaves octets over fails."""
    first = certificate_pem[: certificate_pem.index("-----END CERTIFICATE-----") + 25]
    cert, rest = decoder.decode(ssl.PEM_cert_to_DER_cert(first), asn1Spec=rfc5280.Certificate())
    assert rest == b""
    found: list[tuple[str, str | None]] = []
    for ext in cert["tbsCertificate"]["extensions"]:
        if ext["extnID"] != rfc5280.id_ce_subjectAltName:
            continue
        names, rest = decoder.decode(bytes(ext["extnValue"]), asn1Spec=rfc5280.SubjectAltName())
        assert rest == b""
        for name in names:
            other = name["otherName"] if name.getName() == "otherName" else None
            if other is None or other["type-id"] != rfc4043.id_on_permanentIdentifier:
                continue
            value, rest = decoder.decode(bytes(other["value"]), asn1Spec=rfc4043.PermanentIdentifier())
            assert rest == b""
            assigner = str(value["assigner"]) if value["assigner"].isValue else None
            found.append((str(value["identifierValue"]), assigner))
    return found


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ca-service ARGS`` as a subprocess with ``env`` over this environment; with
    ``check``, a non-zero exit fails the test with the command's stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "ca_service.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The service under gunicorn with several workers, configured through the environment. Its
    public URL is its own address (ACME URLs come from it) unless ``public_url`` names another
    (a reverse proxy in front). ``app`` is the WSGI application gunicorn loads (the benches
    serve a floor of the stack through the same configuration)."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 2,
        public_url: str | None = None,
        port: int | None = None,
        app: str = "ca_service:create_app()",
    ) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **env,
            "CA_SERVICE_BIND": f"127.0.0.1:{self.port}",
            "CA_SERVICE_WORKERS": str(workers),
            "CA_SERVICE_PUBLIC_URL": public_url or self.url,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        self.log = open(Path(self.env["CA_SERVICE_HOME"]) / f"gunicorn-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(REPO / "deploy" / "gunicorn.conf.py"),
                self.app,
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited: " + Path(self.log.name).read_text()[-2000:])
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code in (200, 503):
                    return self
            except (requests.ConnectionError, requests.Timeout):  # workers still booting
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start: " + Path(self.log.name).read_text()[-2000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


OFFLINE_CA_EXTENSIONS = """basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def sign_with_offline_root(tmp: Path, csr: Path) -> tuple[Path, Path]:
    """What an operator does with an offline root and the openssl CLI: make the root (P-384) and
    sign the issuing CA's CSR with it. Returns (issuing certificate, root certificate)."""
    root_key, root = tmp / "offline-root.key", tmp / "offline-root.pem"
    self_signed(
        root_key, root, "/O=Example/CN=Offline Root", curve="P-384", days=3650,
        ext=("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"),
    )  # fmt: skip
    ext = tmp / "offline-ca.ext"
    ext.write_text(OFFLINE_CA_EXTENSIONS)
    issuing = tmp / "issuing.pem"
    openssl(
        *("x509", "-req", "-in", str(csr), "-CA", str(root), "-CAkey", str(root_key), "-CAcreateserial"),
        *("-days", "365", "-sha384", "-extfile", str(ext), "-out", str(issuing)),
    )
    return issuing, root
