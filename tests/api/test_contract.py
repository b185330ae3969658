"""The OpenAPI document as served: valid OpenAPI 3.1, and the promises of api.openapi
kept by every operation it lists (so by every route added later, too)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from api.openapi import BINARY_SCHEMA, OCTET_STREAM, PROBLEM_SCHEMA, is_error, operations
from tests.conftest import KeysServer

# Error responses documented with a body of their own: /readyz answers a probe.
OWN_ERROR_BODIES = {("get", "/readyz", "503")}


@pytest.fixture(scope="module")
def document(api_server: Any) -> dict[str, Any]:
    """The open-mode server's document."""
    with api_server.client() as client:
        body: dict[str, Any] = client.get("/openapi.json").json()
        return body


@pytest.fixture(scope="module")
def keys_document(keys_server: KeysServer) -> dict[str, Any]:
    with keys_server.client() as client:
        body: dict[str, Any] = client.get("/openapi.json").json()
        return body


def test_the_document_is_valid_openapi_in_both_modes(
    document: dict[str, Any], keys_document: dict[str, Any]
) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)
    validate(keys_document)


def test_every_error_of_every_operation_is_a_problem_document(document: dict[str, Any]) -> None:
    own: set[tuple[str, str, str]] = set()
    checked = 0
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "default" in responses, (method, path)
        for status, response in responses.items():
            if not is_error(status):
                continue
            if response["content"] != {"application/problem+json": {"schema": PROBLEM_SCHEMA}}:
                own.add((method, path, status))
            checked += 1
    assert own == OWN_ERROR_BODIES
    assert checked > 60
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    problem = schemas["ProblemDetails"]
    assert set(problem["required"]) >= {"type", "title", "status", "instance"}
    errors = problem["properties"]["errors"]["anyOf"][0]["items"]["$ref"]
    assert schemas[errors.rsplit("/", 1)[1]]["required"] == ["field", "reason"]


def test_every_schema_has_one_name(document: dict[str, Any]) -> None:
    """FastAPI names two models of one name by their modules (`api__schemas__Reference`),
    which a generator refuses as duplicate models: give each its own name."""
    assert not [name for name in document["components"]["schemas"] if "__" in name]


def successes(document: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(operation, status, media type, media) of every success body in `document`."""
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                if not is_error(status):
                    yield f"{method} {path}", status, media_type, media


def test_every_success_body_has_a_schema_and_binary_ones_offer_octet_stream(
    document: dict[str, Any],
) -> None:
    binary: set[str] = set()
    for operation, status, media_type, media in successes(document):
        assert "itemSchema" not in media, operation
        assert "schema" in media, (operation, status, media_type)
        if media["schema"] == BINARY_SCHEMA:
            binary.add(operation)
            assert not media_type.endswith("json"), operation
    for operation in binary:
        media_types = {
            media_type
            for op, _, media_type, media in successes(document)
            if op == operation and media["schema"] == BINARY_SCHEMA
        }
        assert OCTET_STREAM in media_types, operation
    assert {
        "get /v1/experiments/{job_id}/plots/{name}.png",
        "get /v1/experiments/{job_id}/arrays.npz",
        "get /v1/studies/{study_id}/plots/{name}.png",
    } <= binary
    events = document["paths"]["/v1/experiments/{job_id}/events"]["get"]["responses"]["200"]
    stream = events["content"]["text/event-stream"]
    assert stream["schema"] == {"type": "string"}
    assert "event" in stream["x-itemSchema"]["properties"]


def test_open_mode_declares_no_security_and_keys_mode_does(
    document: dict[str, Any], keys_document: dict[str, Any]
) -> None:
    assert "securitySchemes" not in document.get("components", {})
    assert not [path for _, path, operation in operations(document) if "security" in operation]
    create = keys_document["paths"]["/v1/experiments"]["post"]
    schemes = {name for requirement in create["security"] for name in requirement}
    assert schemes == {"HTTPBearer", "APIKeyHeader"}
    assert "metricsToken" not in keys_document["components"]["securitySchemes"]


def test_an_invalid_parameter_is_answered_as_documented(client: httpx.Client) -> None:
    response = client.get("/v1/experiments", params={"limit": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "limit"
