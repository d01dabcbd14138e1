"""Examples in the OpenAPI document: what a request or an answer of the REST API looks like.

The CSR is real (an ECDSA P-256 key, CN=7C2F80C6E5C2), so "Try it out" on /docs issues a
certificate with it; the PEM certificate is a stand-in (self-signed, of the same shape).
"""

from __future__ import annotations

from typing import Any

MAC = "7C2F80C6E5C2"
SERIAL = "5A1F3C2B9E8D7F6A5B4C3D2E1F0A9B8C7D6E5F40"
AT = "2026-12-01T10:00:00+00:00"
CSR_PEM = """-----BEGIN CERTIFICATE REQUEST-----
MIHRMHkCAQAwFzEVMBMGA1UEAwwMN0MyRjgwQzZFNUMyMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAExwYF4glBL0qjl/5e6k468k/kYZg9pAO8LzNe4UvUQdWid9B9
JnEESAXSNzSVbRKK/7OX3dA8TCEJQCMA7RVuBKAAMAoGCCqGSM49BAMCA0gAMEUC
IDSqyRVg1IYcLTw2ljcnND7lud5mAFO1FScKeIW5vBxfAiEA3BF+8GjdsZRp5D0r
SIPTlU+D4qUwS8ntXCZwqTkSFBs=
-----END CERTIFICATE REQUEST-----
"""
CERT_PEM = """-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUIz3eRdQcwtLqTJCG80C9/2d4DkkwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMN0MyRjgwQzZFNUMyMB4XDTI2MTIwMjAwNDgxMVoXDTI3MTIw
MjAwNDgxMVowFzEVMBMGA1UEAwwMN0MyRjgwQzZFNUMyMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAExwYF4glBL0qjl/5e6k468k/kYZg9pAO8LzNe4UvUQdWid9B9
JnEESAXSNzSVbRKK/7OX3dA8TCEJQCMA7RVuBKNTMFEwHQYDVR0OBBYEFIMLoIIh
tDzbyNiQY5JqErrMvthYMB8GA1UdIwQYMBaAFIMLoIIhtDzbyNiQY5JqErrMvthY
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgDapY9Fazfdn1O76+
hnC8eJUxpfEKgcUqLZJQMn0eJ0wCIQC6H8MbrtKkZ/WcEBQmMIt5j7n+/5EJ8Vpa
Nyh/yH21bg==
-----END CERTIFICATE-----
"""
CRL_PEM = "-----BEGIN X509 CRL-----\nMIIBKjCB0QIBATAKBggqhkjOPQQDAjAf...\n-----END X509 CRL-----\n"

CERTIFICATE: dict[str, Any] = {
    "serial": SERIAL,
    "mac": MAC,
    "profile": "device",
    "issuer": "issuing-20261201100000",
    "status": "valid",
    "not_before": "2026-12-01T09:55:00+00:00",
    "not_after": "2027-12-01T09:55:00+00:00",
    "key_type": "ec-p256",
    "fingerprint_sha256": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
    "revoked_at": None,
    "revocation_reason": None,
    "replaces": None,
    "replaced_by": None,
    "created_by": "provisioner:factory-line-1",
    "created_at": AT,
    "certificate_pem": CERT_PEM,
    "chain_pem": CERT_PEM,
}
DEVICE_SUMMARY: dict[str, Any] = {
    "mac": MAC,
    "model": "N670 IP PRO",
    "firmware": "2.59.1",
    "labels": {"site": "berlin-2"},
    "created_at": AT,
}
DEVICE: dict[str, Any] = {**DEVICE_SUMMARY, "certificates": [CERTIFICATE], "certificates_total": 1}
DELIVERY: dict[str, Any] = {
    "certificate_url": "https://ca.example.net/provisioning/cert/q3X0b1Yw9c4u8kN2m5PzR7tV6sJ1hG3fD8aL0eQ4iWo",
    "key_url": "https://ca.example.net/provisioning/key/Zt7Lw2Qm9Vx4Nc1Bp6Hr3Ks8Jd5Gf0Ya2Ue7Io4Tb9",
    "expires_at": "2026-12-02T10:00:00+00:00",
    "bound_to_user_agent": True,
    "certificate": CERTIFICATE,
}
PROVISIONING_STEP = (
    f'<step type="certificate" url="{DELIVERY["certificate_url"]}" key="{DELIVERY["key_url"]}" '
    'flags="CLIENT_CERT" />'
)
PROVISIONING_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<provisioning version="1.1" productID="e2">\n'
    f"  <firmware></firmware>\n  <nvm></nvm>\n  <custom>\n    {PROVISIONING_STEP}\n  </custom>\n"
    "</provisioning>\n"
)
DEVICE_CSV = "mac,model,firmware,site\n7c:2f:80:c6:e5:c2,N670 IP PRO,2.59.1,berlin-2\n"
IMPORT_REPORT: dict[str, Any] = {
    "rows": 2,
    "created": 1,
    "updated": 0,
    "unchanged": 0,
    "rejected": [
        {"line": 3, "mac": "01:00:5e:00:00:01", "reason": "A multicast address is not a device MAC."}
    ],
}
REVOCATION: dict[str, Any] = {
    "serial": SERIAL,
    "mac": MAC,
    "revoked_at": AT,
    "reason": "keyCompromise",
    "invalidity_date": "2026-11-30T00:00:00+00:00",
}
PROFILE: dict[str, Any] = {
    "name": "device",
    "description": "Gigaset device certificate: client and server authentication",
    "validity_days": 365,
    "client_auth": True,
    "server_auth": True,
    "san_permanent_identifier": True,
    "san_dns_name": False,
    "key_format": "pkcs8",
    "cert_chain": True,
}
RENEWAL_INFO: dict[str, Any] = {
    "serial": SERIAL,
    "mac": MAC,
    "suggestedWindow": {"start": "2027-10-02T09:55:00+00:00", "end": "2027-10-17T09:55:00+00:00"},
    "retry_after": 21600,
}
DUE: dict[str, Any] = {
    "serial": SERIAL,
    "mac": MAC,
    "profile": "device",
    "not_after": "2027-01-15T09:55:00+00:00",
}
ANCHOR: dict[str, Any] = {
    "id": 1,
    "label": "Gigaset factory CA 2",
    "purpose": "gigaset-factory",
    "subject": "CN=Gigaset Factory CA 2,O=Gigaset Communications GmbH",
    "fingerprint_sha256": "3B7F0A5C8E2D4F6A1B9C0D7E5F3A2B1C4D6E8F0A9B7C5D3E1F2A4B6C8D0E1F3A",
    "not_before": "2019-01-01T00:00:00+00:00",
    "not_after": "2039-01-01T00:00:00+00:00",
    "expires_within_90_days": False,
    "warnings": [],
    "created_by": "admin:ops",
    "created_at": AT,
    "retired_by": None,
    "retired_at": None,
    "pem": CERT_PEM,
}
INSPECTION: dict[str, Any] = {
    "generation": "ours",
    "description": "Issued by this CA",
    "mac": MAC,
    "mac_problem": None,
    "subject": f"CN={MAC}",
    "issuer": "CN=ca-service issuing 2026",
    "serial": SERIAL,
    "fingerprint_sha256": CERTIFICATE["fingerprint_sha256"],
    "key": {"type": "ec-p256"},
    "signature": {"algorithm": "ecdsa-with-SHA256"},
    "validity": {"not_before": "2026-12-01T09:55:00+00:00", "not_after": "2027-12-01T09:55:00+00:00"},
    "chain": {"chains_to_bundle": True},
    "ours": {"status": "valid"},
    "advice": ["Nothing to do: the certificate is valid until 2027-12-01."],
}
COMPATIBILITY: dict[str, Any] = {
    "firmware": "2.59.1",
    "software": "2.59",
    "table_row": "2.59 and later",
    "services": {"provisioning": "device certificate", "sip-tls": "device certificate"},
    "sha1_refused": True,
    "trust_purposes": ["gigaset-technologies", "private"],
    "anchors": [{"label": "Gigaset factory CA 2", "purpose": "gigaset-factory"}],
    "missing_purposes": [],
    "bundle_url": "https://ca.example.net/trust/bundle.pem?firmware=2.59.1",
    "notes": [],
}
ISSUER: dict[str, Any] = {
    "name": "issuing-20261201100000",
    "role": "issuing",
    "state": "active",
    "subject": "CN=ca-service issuing 2026",
    "key_uri": "file:keys/issuing-20261201100000.pem",
    "not_before": "2026-12-01T10:00:00+00:00",
    "not_after": "2031-12-01T10:00:00+00:00",
    "parent": "root-20261201100000",
    "certificates": 1520,
    "last_certificate_expires": "2027-12-01T09:55:00+00:00",
}
AUDIT_EVENT: dict[str, Any] = {
    "id": 4711,
    "at": AT,
    "actor": "provisioner:factory-line-1",
    "action": "certificate.issue",
    "outcome": "success",
    "mac": MAC,
    "serial": SERIAL,
    "detail": {"profile": "device", "key_type": "ec-p256"},
}
EAB_CREATE: dict[str, Any] = {"name": "provisioning platform", "scopes": ["7C2F80"]}
EAB_CREATED: dict[str, Any] = {
    "kid": "kid-3f9a1c2e",
    "hmac_key": "c2VjcmV0LWhtYWMta2V5LXNob3duLW9uY2UtYnl0ZXM",
}
EAB_KEY: dict[str, Any] = {
    "kid": "kid-3f9a1c2e",
    "name": "provisioning platform",
    "scopes": ["7C2F80"],
    "state": "bound",
    "account_id": 3,
    "created_at": AT,
    "revoked_at": None,
}
ACCOUNT: dict[str, Any] = {
    "id": 3,
    "status": "valid",
    "contact": ["mailto:ops@example.net"],
    "scopes": ["7C2F80"],
    "eab_kid": "kid-3f9a1c2e",
    "eab_name": "provisioning platform",
    "certificates": 12,
    "created_at": AT,
}
HEALTH: dict[str, Any] = {
    "status": "ok",
    "checks": {"database": "ok", "keystore": "ok", "crl": "ok"},
    "details": {"trust_anchors_expiring_within_90_days": 0, "trust_anchors_expiring": []},
}
METRICS = (
    "# HELP ca_service_http_request_duration_seconds REST and ACME requests\n"
    "# TYPE ca_service_http_request_duration_seconds histogram\n"
    'ca_service_http_request_duration_seconds_count{endpoint="/api/v1/certificates",'
    'method="POST",status="201"} 42.0\n'
)
