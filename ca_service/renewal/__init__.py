"""Renewal: windows (RFC 9773), lineage, the renewal client."""
