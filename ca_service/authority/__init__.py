"""How a certificate or CRL is built and signed. Knows keys only through the key store."""

from ca_service.authority.issuer import Issuer, pem, permanent_identifier
from ca_service.authority.serials import random_serial

__all__ = ["Issuer", "pem", "permanent_identifier", "random_serial"]
