"""Revocation: revoking certificates, CRLs and OCSP responses (RFC 5280, RFC 6960)."""
