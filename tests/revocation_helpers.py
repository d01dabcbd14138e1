"""Shared steps of the revocation tests: issue through the API, write CA files, publish; an
external (offline) root run with the openssl CLI."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from tests.helpers import make_csr, openssl, self_signed


def issue(client: FlaskClient, headers: dict[str, str], tmp: Path, mac: str, name: str) -> tuple[str, Path]:
    """Issue a certificate for ``mac`` (key and CSR by openssl); returns (serial, cert file)."""
    _, csr = make_csr(tmp, mac, name=name)
    response = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=headers)
    assert response.status_code == 201, response.json
    crt = tmp / f"{name}.crt"
    crt.write_text(response.json["certificate_pem"])
    return response.json["serial"], crt


def ca_files(client: FlaskClient, tmp: Path) -> tuple[Path, Path]:
    root, issuing = tmp / "root.pem", tmp / "issuing.pem"
    root.write_bytes(client.get("/ca/root.pem").data)
    issuing.write_bytes(client.get("/ca/issuing.pem").data)
    return root, issuing


CA_CONF = """[ca]
default_ca = root
[root]
database = {tmp}/index.txt
crlnumber = {tmp}/crlnumber
default_md = sha384
default_crl_days = 30
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
"""


class OfflineRoot:
    """An openssl-made root with ``openssl ca``'s files: it signs our issuing CA and its CRLs."""

    def __init__(self, tmp: Path, subject: str = "/O=Example/CN=Offline Root") -> None:
        tmp.mkdir(exist_ok=True)
        self.tmp, self.key, self.cert = tmp, tmp / "root.key", tmp / "root.pem"
        ext = ("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign")
        self_signed(self.key, self.cert, subject, curve="P-384", days=3650, ext=ext)
        (tmp / "index.txt").write_text("")
        self.conf = tmp / "ca.cnf"
        self.conf.write_text(CA_CONF.format(tmp=tmp))

    def _ca(self, *args: str) -> None:
        openssl(
            "ca",
            "-batch",
            "-config",
            str(self.conf),
            "-keyfile",
            str(self.key),
            "-cert",
            str(self.cert),
            *args,
        )

    def sign(self, csr: Path, extensions: str) -> Path:
        ext = self.tmp / "issuing.ext"
        ext.write_text(
            "basicConstraints = critical, CA:TRUE, pathlen:0\nkeyUsage = critical, keyCertSign, cRLSign\n"
            "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n" + extensions
        )
        out = self.tmp / "issuing.pem"
        openssl(
            *("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key)),
            *("-CAcreateserial", "-days", "365", "-sha384", "-extfile", str(ext), "-out", str(out)),
        )
        return out

    def crl(self, number: int, days: int = 30) -> bytes:
        (self.tmp / "crlnumber").write_text(f"{number:02X}\n")
        out = self.tmp / f"crl-{number}.pem"
        self._ca("-gencrl", "-crldays", str(days), "-out", str(out))
        return out.read_bytes()

    def revoke(self, cert: Path, reason: str) -> None:
        self._ca("-revoke", str(cert), "-crl_reason", reason)
