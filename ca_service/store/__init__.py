"""SQLAlchemy models and repositories: the only code that writes SQL."""

from ca_service.store.db import Database, on_commit

__all__ = ["Database", "on_commit"]
