"""The schema is owned by Alembic; the OpenAPI document is checked in and must not drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from ca_service.store.models import Base
from tests.helpers import REPO


def test_migrations_match_models(database_url: str) -> None:
    """The test databases are made by `alembic upgrade heads` only; models must match them."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"certificates", "devices", "issuers", "api_tokens", "audit_events", "alembic_version"} <= tables


def test_openapi_document_is_current(app) -> None:
    checked_in = json.loads((REPO / "openapi" / "openapi.json").read_text())
    current = json.loads(json.dumps(app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()))
    assert current == checked_in, "openapi/openapi.json is stale: run `make openapi`"


def test_docs_and_openapi_served(client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger-ui" in docs.data
    spec = client.get("/openapi.json").json
    assert "/api/v1/certificates" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


@pytest.mark.slow  # the CLI as a subprocess
def test_cli_openapi_matches(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "o.json"
    subprocess.run(
        [sys.executable, "-m", "ca_service.cli", "openapi", "--out", str(out)],
        check=True,
        env={"CA_SERVICE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(out.read_text()) == json.loads((REPO / "openapi" / "openapi.json").read_text())


def test_docs_page_loads_swagger_ui_from_the_configured_mirror(make_settings) -> None:
    from ca_service import create_app

    app = create_app(make_settings(swagger_ui_url="https://mirror.internal/swagger-ui/"))
    page = app.test_client().get("/docs").get_data(as_text=True)
    assert "https://mirror.internal/swagger-ui/swagger-ui-bundle.js" in page and "jsdelivr" not in page
