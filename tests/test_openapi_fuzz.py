"""schemathesis against the app in-process: every operation of the OpenAPI document, as an admin,
an auditor (read-only: the 403s), a provisioner limited to two MAC prefixes (the scope's 403s and
404s) and anonymously, with bounded examples (the document's own, then generated ones, valid and
invalid, derandomized). No answer may be a 5xx, and each must be
documented: its status, its media type, its headers, and its JSON body by the schema.
FUZZ_EXAMPLES sets the generated examples per operation and role (default 15).

Each operation runs on a throwaway CA (the ``app`` fixture: a copy of the session's template
with its own home and SQLite database) that has a published CRL and one device with a
certificate, so that writes change nothing outside it and reads find something.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ca_service import Services
from ca_service.api import examples
from ca_service.api.revocation import OCSP_REQUEST
from ca_service.api.trust import BODY_TYPES
from ca_service.domain import Principal, Role
from tests.helpers import REPO, make_csr

DOCUMENT = json.loads((REPO / "openapi" / "openapi.json").read_text())
METHODS = ("get", "put", "post", "delete", "patch")
OPERATIONS = [(m.upper(), path) for path, item in DOCUMENT["paths"].items() for m in item if m in METHODS]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "15"))
EXAMPLES_OF_THE_DOCUMENT = 5
SCOPES = {"provisioner": ("7C2F80", "001122")}  # the examples' MAC and one other prefix
# raw uploads (documented as binary) go on the wire as the bytes generated
schemathesis.serializer.alias([OCSP_REQUEST, *BODY_TYPES[1:]], "application/octet-stream")


@pytest.fixture
def backend() -> str:
    """SQLite only: the answers' shapes do not depend on the database (PostgreSQL runs elsewhere)."""
    return "sqlite"


@pytest.fixture
def seeded(app: Flask, services: Services, tmp_path) -> Flask:
    """The app with a published CRL and the examples' device holding one certificate."""
    services.revocation.publish_due()
    admin = Principal(name="fuzz", role=Role.ADMIN)
    services.devices.register(admin, examples.MAC, model=None, firmware=None, labels={})
    _, csr = make_csr(tmp_path, examples.MAC)
    services.enrollment.issue(csr.read_text(), admin, None)
    return app


@pytest.mark.parametrize("role", ["admin", "auditor", "provisioner", "anonymous"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_answers_as_documented(
    seeded: Flask, token: Callable[..., dict[str, str]], role: str, method: str, path: str
) -> None:
    operation = schemathesis.openapi.from_wsgi("/openapi.json", seeded)[path][method]
    bearer = None if role == "anonymous" else token(role, *SCOPES.get(role, ()))["Authorization"]

    def answer_all(cases: st.SearchStrategy[Case], count: int) -> None:
        @given(case=cases)
        @settings(
            max_examples=count,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def answers(case: Case) -> None:
            headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            if bearer is not None:
                headers["Authorization"] = bearer
            case.headers = headers
            case.call_and_validate(checks=CHECKS)

        answers()

    documented = operation.schema.get_strategies_from_examples(operation)
    if documented:  # the document's own examples first ("Try it out" sends them)
        answer_all(st.one_of(documented), EXAMPLES_OF_THE_DOCUMENT)
    answer_all(
        st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        ),
        EXAMPLES_PER_OPERATION,
    )


def test_every_operation_is_documented_in_full() -> None:
    """Summary, description, a unique operationId and an example of every answer with a body."""
    seen: set[str] = set()
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            assert operation.get("summary") and operation.get("description"), where
            assert operation["operationId"] not in seen, where
            seen.add(operation["operationId"])
            for status, answer in operation["responses"].items():
                for media_type, content in answer.get("content", {}).items():
                    binary = content.get("schema", {}).get("format") == "binary"
                    assert binary or "example" in content, f"{where} {status} {media_type}"
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                binary = content.get("schema", {}).get("format") == "binary"
                assert binary or "example" in content, f"{where} request {media_type}"


def test_problems_are_documented_as_sent() -> None:
    """RFC 9457 problems with their extension members; flask-smorest's Error and pagination
    shapes, which the service never sends, are not in the document."""
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["Problem"]["additionalProperties"] is True
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= set(
        schemas["Problem"]["required"]
    )
    assert not {"Error", "PaginationMetadata"} & set(schemas) and "responses" not in DOCUMENT["components"]
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                statuses = set(operation["responses"])
                assert "default" not in statuses and "503" in statuses, f"{method} {path}"
                assert "401" in statuses or "security" not in operation, f"{method} {path}"
