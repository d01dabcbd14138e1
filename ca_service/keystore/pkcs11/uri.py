"""RFC 7512 ``pkcs11:`` URIs: the token, the object and where the PIN comes from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from ca_service.errors import CAError, Kind

PATH_ATTRIBUTES = ("token", "serial", "object", "id", "type")
QUERY_ATTRIBUTES = ("module-path", "pin-source")


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of an RFC 7512 URI that this store uses (section 2.3)."""

    token: str | None
    serial: str | None
    object: str | None
    id: bytes | None
    module_path: str
    pin_source: str | None

    @classmethod
    def parse(cls, uri: str) -> Pkcs11Uri:
        """Parse ``pkcs11:<path>[?<query>]``: path attributes separated by ``;``, query attributes
        by ``&``, values percent-decoded (RFC 7512 section 2.3). ``pin-value`` is refused: a PIN
        belongs in a pin-source, not in a URI that is stored and shown."""
        scheme, _, rest = uri.partition(":")
        if scheme.lower() != "pkcs11":
            raise CAError(Kind.MALFORMED, "A PKCS#11 key URI starts with 'pkcs11:'.")
        path, _, query = rest.partition("?")
        path_attrs = _attributes(path, ";", PATH_ATTRIBUTES)
        query_attrs = _attributes(query, "&", (*QUERY_ATTRIBUTES, "pin-value"))
        if "pin-value" in query_attrs:
            raise CAError(
                Kind.MALFORMED,
                "A PKCS#11 key URI must not carry the PIN (pin-value); use pin-source=file:<path> "
                "or pin-source=env:<VARIABLE>.",
            )
        if path_attrs.get("type", "private") != "private":
            raise CAError(Kind.MALFORMED, "A CA key URI names a private key (type=private or no type).")
        if not (path_attrs.get("token") or path_attrs.get("serial")):
            raise CAError(
                Kind.MALFORMED, "A PKCS#11 key URI names its token: token=<label> or serial=<serial>."
            )
        if not (path_attrs.get("object") or path_attrs.get("id")):
            raise CAError(
                Kind.MALFORMED, "A PKCS#11 key URI names its key: object=<label> or id=<%xx bytes>."
            )
        module = query_attrs.get("module-path")
        if not module:
            raise CAError(
                Kind.MALFORMED,
                "A PKCS#11 key URI names its module: module-path=/usr/lib/softhsm/libsofthsm2.so.",
            )
        raw_id = path_attrs.get("id")
        return cls(
            token=path_attrs.get("token"),
            serial=path_attrs.get("serial"),
            object=path_attrs.get("object"),
            id=raw_id.encode("latin-1") if raw_id is not None else None,
            module_path=module,
            pin_source=query_attrs.get("pin-source"),
        )

    @property
    def label(self) -> str:
        """The URI without its query (no module path, no pin-source): fit for errors and logs."""
        parts = [f"token={self.token}" if self.token else f"serial={self.serial}"]
        if self.object:
            parts.append(f"object={self.object}")
        if self.id:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        return "pkcs11:" + ";".join(parts)

    def read_pin(self) -> str | None:
        """The user PIN from ``pin-source``: ``file:<path>`` (first line) or ``env:<VARIABLE>``.
        Errors name the source, never its content."""
        source = self.pin_source
        if source is None:
            return None
        if source.startswith("env:"):
            name = source[4:]
            value = os.environ.get(name)
            if value is None:
                raise CAError(
                    Kind.UNAVAILABLE, f"The PIN variable {name[:64]} named by pin-source is not set."
                )
            return value
        if source.startswith("file:"):
            path = Path(source[5:].removeprefix("//"))
            try:
                lines = path.read_text().splitlines()
            except OSError as exc:
                raise CAError(
                    Kind.UNAVAILABLE, f"The PIN file {path} named by pin-source cannot be read."
                ) from exc
            return lines[0] if lines else ""
        raise CAError(Kind.MALFORMED, "pin-source is file:<path> or env:<VARIABLE>.")


def _attributes(text: str, separator: str, allowed: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, text.split(separator)):
        name, eq, value = part.partition("=")
        if not eq or name not in allowed:
            raise CAError(
                Kind.MALFORMED,
                f"Unsupported PKCS#11 URI attribute '{name[:30]}'; allowed: {', '.join(allowed)}.",
            )
        if name in out:
            raise CAError(Kind.MALFORMED, f"The PKCS#11 URI attribute '{name}' appears twice.")
        # ``id`` is raw bytes (%xx), the others UTF-8 text.
        out[name] = unquote(value, encoding="latin-1" if name == "id" else "utf-8")
    return out
