"""The RFC 8555 front end under /acme/: JWS, nonces, accounts, orders, authorizations,
finalize, certificate download, revocation and renewal information (RFC 9773)."""

from ca_service.acme.problems import render
from ca_service.acme.views import bp, finish

__all__ = ["bp", "finish", "render"]
