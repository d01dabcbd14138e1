"""design.md, Habits: no CSR is accepted unless its CN is the order's MAC.

``Enrollment.issue(..., expected_mac=order)`` is what ACME finalize calls for an order's
identifier. Property over the real issuance cycle (signer, SQLite database): a certificate comes
back exactly when the CSR's CN spells the order's MAC, in any documented spelling, and then its
subject CN and its RFC 4043 PermanentIdentifier (decoded with pyasn1) are that MAC.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ca_service import Services
from ca_service.domain import Principal, Role
from ca_service.errors import CAError, Kind
from tests.helpers import permanent_identifiers
from tests.strategies import cn_text, csr_with, device_macs, mac_of, mac_spellings, spelling

ADMIN = Principal(name="property", role=Role.ADMIN)  # no scope in the way: only the CN rule decides


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(
    max_examples=60,
    deadline=None,  # each accepted example signs and commits
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one CA for all examples is right
)
@given(data=st.data())
def test_no_csr_is_accepted_unless_its_cn_is_the_orders_mac(services: Services, data: st.DataObject) -> None:
    order = data.draw(device_macs, label="order")
    cn = data.draw(st.one_of(spelling(order), mac_spellings(), cn_text), label="cn")
    try:
        issued = services.enrollment.issue(csr_with(cn), ADMIN, expected_mac=order)
    except CAError as exc:
        event("refused")
        assert mac_of(cn) != order, exc.detail  # a spelling of the order's MAC is never refused
        assert exc.kind is Kind.BAD_IDENTIFIER
        return
    event("accepted")
    assert mac_of(cn) == order
    cert = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [order.value]
    assert permanent_identifiers(issued.certificate_pem) == [(order.value, None)]
    assert issued.mac == order.value
