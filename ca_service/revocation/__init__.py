"""Revoke, CRL generation and publication, OCSP responses."""

from ca_service.policy.reasons import REASONS
from ca_service.revocation.ocsp import OcspResponder
from ca_service.revocation.publisher import Publisher
from ca_service.revocation.service import PublishedCrl, Revocation, Revoked

__all__ = ["REASONS", "OcspResponder", "PublishedCrl", "Publisher", "Revocation", "Revoked"]
