"""Key store access for the parts that may not import keystore/ directly (design: only
authority/ talks to keystore/)."""

from ca_service.keystore import SigningKey, create_key, display_uri, generate_software_key, load_key
from ca_service.keystore.wrapping import Wrapper, ensure_wrapping_key, wrapping_key

__all__ = [
    "SigningKey",
    "Wrapper",
    "create_key",
    "display_uri",
    "ensure_wrapping_key",
    "generate_software_key",
    "load_key",
    "wrapping_key",
]
