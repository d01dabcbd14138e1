"""May we issue this? Pure functions: no I/O, no Flask, no database."""

from ca_service.policy.csr import CsrFacts, CsrRules, check_csr
from ca_service.policy.mac import device_mac
from ca_service.policy.scope import WRITERS, check_scope, in_scope, require_role

__all__ = [
    "WRITERS",
    "CsrFacts",
    "CsrRules",
    "check_csr",
    "check_scope",
    "device_mac",
    "in_scope",
    "require_role",
]
