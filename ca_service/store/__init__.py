"""SQLAlchemy models and repositories: the only code that writes SQL."""

from ca_service.store.db import Database

__all__ = ["Database"]
