"""The ``pkcs11:`` key store: CA keys inside a PKCS#11 token (an HSM; SoftHSM2 in tests).

A key is named by an RFC 7512 URI, for example
``pkcs11:token=ca-service;object=issuing-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/ca-service/pin``.
Keys are generated inside the token as sensitive and non-extractable; this module only ever holds
object handles. The PIN comes from the URI's ``pin-source`` (``file:<path>`` or ``env:<VAR>``),
never from the URI itself, and never appears in errors or logs.

Sessions are per process: after a fork (gunicorn workers) the library is initialised again and a
new session is opened. When signing fails (session lost, token re-initialised, library error) the
session is dropped and the caller gets ``CAError(UNAVAILABLE)``; the next use re-initialises the
library and logs in again, so the service recovers without a restart.
"""

from ca_service.keystore.pkcs11.store import Pkcs11KeyStore
from ca_service.keystore.pkcs11.uri import Pkcs11Uri
from ca_service.keystore.pkcs11.wrapping import Pkcs11WrappingKey

__all__ = ["Pkcs11KeyStore", "Pkcs11Uri", "Pkcs11WrappingKey"]
