"""What is this device certificate? Classification of a certificate a device presents, against
the trust bundle. Pure functions: no I/O (the service adds what the database knows about ours).

Path building follows what OpenSSL does with a CA file (RFC 5280 section 6.1, simplified): from
the leaf, follow issuers through the bundle and the chain sent with the certificate until a
self-signed certificate of the bundle is reached. Name chaining plus signature checks, validity of
every certificate on the path; no policy or name constraints processing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from ca_service.bundle.anchors import (
    PRIVATE,
    fingerprint,
    is_self_signed,
    is_weak_signature,
    key_description,
    load_certificates,
    signature_hash,
    signature_name,
    signed_by,
)
from ca_service.bundle.render import Entry
from ca_service.errors import CAError
from ca_service.policy import device_mac
from ca_service.policy.mac import GENERIC_FACTORY_CN

MAX_DEPTH = 6
GIGASET_NET = x509.Name.from_rfc4514_string(
    "CN=Gigaset.net,OU=Certificate Authority,O=Gigaset Communications GmbH,L=Bocholt,ST=Germany,C=DE"
)
TECHNOLOGIES_MARK = "Gigaset Technologies"

FACTORY_EINSTEIN2 = "gigaset-factory-einstein2"
FACTORY_MAC = "gigaset-factory-mac"
TECHNOLOGIES = "gigaset-technologies"
OURS = "ours"
OTHER = "other-listed-ca"
UNKNOWN = "unknown-issuer"
GENERATIONS = {
    FACTORY_EINSTEIN2: "Gigaset factory certificate with the generic CN=Einstein2: it identifies no device.",
    FACTORY_MAC: "Gigaset factory certificate with the device MAC as CN (issuer Gigaset.net).",
    TECHNOLOGIES: "Gigaset Technologies certificate (device software >= 2.61, device-generated).",
    OURS: "Issued by this service.",
    OTHER: "Issued by a CA imported into the bundle with purpose 'other'.",
    UNKNOWN: "Issued by a CA that is not in the trust bundle.",
}


@dataclass(frozen=True)
class ChainResult:
    chains_to_bundle: bool
    anchor: dict[str, str] | None  # the first bundle certificate on the path
    path: list[str]  # subjects above the leaf, up to the root
    problem: str | None


@dataclass
class Inspection:
    generation: str
    description: str
    mac: str | None
    mac_problem: str | None
    subject: str
    issuer: str
    serial: str
    fingerprint_sha256: str
    key: dict[str, object]
    signature: dict[str, object]
    validity: dict[str, object]
    chain: ChainResult
    ours: dict[str, object] | None = None
    advice: list[str] = field(default_factory=list)


def build_chain(
    leaf: x509.Certificate,
    presented: list[x509.Certificate],
    bundle: list[tuple[Entry, x509.Certificate]],
    now: datetime,
) -> ChainResult:
    """Follow issuers from ``leaf`` through ``bundle`` (trusted) and ``presented`` (untrusted
    intermediates) to a self-signed certificate of the bundle."""
    current, anchor = leaf, None
    path: list[str] = []
    for _ in range(MAX_DEPTH):
        trusted = next(((e, c) for e, c in bundle if signed_by(current, c)), None)
        parent = trusted[1] if trusted else next((c for c in presented if signed_by(current, c)), None)
        if parent is None:
            return ChainResult(
                False,
                anchor,
                path,
                f"No certificate in the bundle issued '{current.subject.rfc4514_string()}'.",
            )
        if trusted and anchor is None:
            entry = trusted[0]
            anchor = {"label": entry.label, "purpose": entry.purpose, "fingerprint_sha256": entry.fingerprint}
        path.append(parent.subject.rfc4514_string())
        if not parent.not_valid_before_utc <= now < parent.not_valid_after_utc:
            return ChainResult(False, anchor, path, f"The CA '{path[-1]}' is outside its validity period.")
        if is_self_signed(parent):
            if trusted:
                return ChainResult(True, anchor, path, None)
            return ChainResult(False, anchor, path, f"The root '{path[-1]}' is not in the bundle.")
        current = parent
    return ChainResult(False, anchor, path, f"The chain is longer than {MAX_DEPTH} certificates.")


def classify(leaf: x509.Certificate, chain: ChainResult) -> str:
    purpose = chain.anchor["purpose"] if chain.anchor else None
    if purpose == PRIVATE:
        return OURS
    if purpose == "gigaset-factory" or leaf.issuer == GIGASET_NET:
        cn = _common_name(leaf)
        return FACTORY_EINSTEIN2 if cn == GENERIC_FACTORY_CN else FACTORY_MAC
    if purpose == "gigaset-technologies" or TECHNOLOGIES_MARK in leaf.issuer.rfc4514_string():
        return TECHNOLOGIES
    return OTHER if chain.chains_to_bundle else UNKNOWN


def inspect_chain(
    data: bytes | str, bundle: list[tuple[Entry, x509.Certificate]], now: datetime
) -> Inspection:
    """Inspect the first certificate of ``data`` (PEM or DER); further PEM blocks are its chain."""
    leaf, *presented = load_certificates(data)
    chain = build_chain(leaf, presented, bundle, now)
    generation = classify(leaf, chain)
    cn = _common_name(leaf)
    mac, mac_problem = None, None
    try:
        mac = device_mac(cn or "").value
    except CAError as exc:
        mac_problem = exc.detail if cn else "The certificate has no CN, so it names no device."
    kind, bits, weak_key = key_description(leaf)
    sha1 = is_weak_signature(leaf)
    expired = leaf.not_valid_after_utc <= now
    result = Inspection(
        generation=generation,
        description=GENERATIONS[generation],
        mac=mac,
        mac_problem=mac_problem,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        serial=format(leaf.serial_number, "X"),
        fingerprint_sha256=fingerprint(leaf),
        key={"type": kind, "bits": bits, "weak": weak_key},
        signature={
            "algorithm": signature_name(leaf),
            "hash": signature_hash(leaf),
            "refused_by_software_2_57_and_later": sha1,
        },
        validity={
            "not_before": leaf.not_valid_before_utc.isoformat(),
            "not_after": leaf.not_valid_after_utc.isoformat(),
            "expired": expired,
            "not_yet_valid": leaf.not_valid_before_utc > now,
            "days_left": max(0, (leaf.not_valid_after_utc - now).days),
        },
        chain=chain,
    )
    result.advice = advice(result, is_ca=_is_ca(leaf))
    return result


def advice(r: Inspection, is_ca: bool = False) -> list[str]:
    """What the operator should do next, most important first."""
    out: list[str] = []
    if is_ca:
        out.append(
            "This is a CA certificate, not a device certificate; import it with 'ca-service trust add'."
        )
    if r.generation == FACTORY_EINSTEIN2:
        out.append(
            "Replace this certificate: CN=Einstein2 is shared by many devices and identifies none. "
            "Issue one of ours (POST /api/v1/certificates with a CSR whose CN is the device MAC) "
            "or ask Gigaset support."
        )
    elif r.mac_problem:
        out.append(f"The CN names no device: {r.mac_problem}")
    if r.signature["refused_by_software_2_57_and_later"]:
        out.append(
            f"Signed with {r.signature['algorithm']}: device software 2.57 and later refuses SHA-1 "
            "certificates; replace it with a SHA-256 signed one."
        )
    if r.key["weak"]:
        out.append(f"The {r.key['type']} key of {r.key['bits']} bits is too weak; replace the certificate.")
    if r.validity["expired"]:
        out.append(f"The certificate expired on {r.validity['not_after'][:10]}; replace it.")  # type: ignore[index]
    if r.validity["not_yet_valid"]:
        out.append("The certificate is not valid yet; check the clocks of the device and the CA.")
    if not r.chain.chains_to_bundle:
        if r.generation in (FACTORY_MAC, FACTORY_EINSTEIN2):
            out.append(
                "The Gigaset.net CA is missing from the bundle: import it with 'ca-service trust add FILE "
                "--purpose gigaset-factory' (capture it with 'ca-service trust capture' if you lack it)."
            )
        elif r.generation == TECHNOLOGIES:
            out.append(
                "The Gigaset Technologies CA certificates are missing from the bundle: capture the device's "
                "chain with 'ca-service trust capture' and import them with --purpose gigaset-technologies."
            )
        else:
            out.append(
                f"Servers using the bundle will refuse it ({r.chain.problem}) If the device is genuine, "
                "capture its chain with 'ca-service trust capture' and import its CA with "
                "'ca-service trust add'."
            )
    if not out:
        out.append("Nothing to do: servers that load the trust bundle accept this certificate.")
    return out


def suggested_purpose(chain: list[x509.Certificate]) -> str:
    """What an operator should import after capturing ``chain`` (leaf first) from a device. The
    purpose is only suggested by names, which whoever connected chose: the operator checks the
    fingerprints out of band before importing."""
    leaf, cas = chain[0], [c for c in chain[1:] if _is_ca(c)]
    names = " ".join(c.issuer.rfc4514_string() for c in chain)
    if leaf.issuer == GIGASET_NET or any(c.subject == GIGASET_NET for c in cas):
        purpose = "gigaset-factory"
    elif TECHNOLOGIES_MARK in names:
        purpose = "gigaset-technologies"
    else:
        purpose = "other"
    if not cas:
        return (
            f"the device sent only its own certificate; obtain its issuer '{leaf.issuer.rfc4514_string()}' "
            "(from Gigaset for Gigaset devices) and import it with "
            f"'ca-service trust add FILE --purpose {purpose}' (the names suggest that purpose)."
        )
    return (
        f"import the CA certificate(s) at depth 1..{len(chain) - 1} with 'ca-service trust add FILE "
        f"--purpose {purpose} --label ...' (the names suggest that purpose; a root is needed as "
        "well if the device did not send it)."
    )


def _common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else None
    return value if isinstance(value, str) else None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
