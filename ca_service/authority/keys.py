"""Key store access for the parts that may not import keystore/ directly (design: only
authority/ talks to keystore/)."""

from ca_service.keystore import SigningKey, create_key, display_uri, load_key

__all__ = ["SigningKey", "create_key", "display_uri", "load_key"]
