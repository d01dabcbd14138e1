"""The ``ca-service`` command: one module per command group, no business logic.

Importing the modules registers their commands on :data:`main`."""

from ca_service.cli import (
    acme,
    audit,
    ca,
    certificates,
    crl,
    database,
    devices,
    keys,
    renewals,
    serve,
    tokens,
    trust,
)
from ca_service.cli.base import main

__all__ = [
    "acme",
    "audit",
    "ca",
    "certificates",
    "crl",
    "database",
    "devices",
    "keys",
    "main",
    "renewals",
    "serve",
    "tokens",
    "trust",
]
