"""Hypothesis strategies shared by the property tests: MACs, their documented spellings, CN values
and CSRs made with cryptography (fast enough to make one per example; openssl makes the vectors)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st

from ca_service.domain import MacAddress
from ca_service.errors import CAError

macs = st.binary(min_size=6, max_size=6).map(lambda b: MacAddress(b.hex().upper()))
# what may identify a device: unicast (this also excludes broadcast) and not all zeros
device_macs = macs.filter(lambda m: not m.is_multicast and not m.is_zero)


@st.composite
def spelling(draw: st.DrawFn, mac: MacAddress) -> str:
    """One of the spellings MacAddress documents (pairs with ':' or '-', dotted groups of four,
    bare digits), each digit in either case, with surrounding white space or none."""
    digits = "".join(draw(st.sampled_from((c.lower(), c.upper()))) for c in mac.value)
    pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
    text = draw(
        st.sampled_from(
            (":".join(pairs), "-".join(pairs), ".".join((digits[:4], digits[4:8], digits[8:])), digits)
        )
    )
    return draw(st.sampled_from(("", " ", "\t"))) + text + draw(st.sampled_from(("", " ", "\n")))


def mac_spellings() -> st.SearchStrategy[str]:
    return macs.flatmap(spelling)


# CN values cryptography can encode: 1 to 64 octets of UTF-8, no lone surrogates
cn_text = st.one_of(
    st.text(st.characters(codec="ascii"), min_size=1, max_size=64),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=16),
)

KEY = ec.generate_private_key(ec.SECP256R1())  # the key is not what the properties are about


def csr_with(*cns: str, key: ec.EllipticCurvePrivateKey = KEY) -> bytes:
    """A PEM CSR signed with SHA-256 by ``key`` whose subject has one CN attribute per value."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def mac_of(text: str) -> MacAddress | None:
    """The MAC that ``text`` spells, or None."""
    try:
        return MacAddress.parse(text)
    except CAError:
        return None
