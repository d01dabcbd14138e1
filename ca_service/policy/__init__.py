"""May we issue this? Pure functions: no I/O, no Flask, no database."""

from ca_service.policy.csr import CsrFacts, CsrRules, check_csr
from ca_service.policy.mac import device_mac
from ca_service.policy.scope import check_scope, in_scope

__all__ = ["CsrFacts", "CsrRules", "check_csr", "check_scope", "device_mac", "in_scope"]
