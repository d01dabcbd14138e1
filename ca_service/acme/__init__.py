"""The RFC 8555 ACME front end."""
