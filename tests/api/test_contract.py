"""The OpenAPI document as served: valid OpenAPI 3.1, and the promises of api.openapi
kept by every operation it lists (so by every route added later, too)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from pydantic import ValidationError

from api.openapi import (
    BINARY_SCHEMA,
    COMPONENTS,
    OCTET_STREAM,
    PROBLEM_SCHEMA,
    is_error,
    operations,
)
from core.experiment.limits import Limits
from core.experiment.spec import (
    BUILTIN_KINDS,
    DATASET_ID_PATTERN,
    UPLOADED_FIELDS,
    DatasetKind,
    DatasetSpec,
)
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


def test_a_study_row_types_a_regressions_baseline_loss(document: dict[str, Any]) -> None:
    row = document["components"]["schemas"]["StudyRow"]
    baseline = row["properties"]["baseline_loss"]
    refs = [option.get("$ref") for option in baseline["anyOf"]]
    assert "#/components/schemas/StudyStat" in refs and {"type": "null"} in baseline["anyOf"]
    assert "predicting the mean" in baseline["description"]
    assert "baseline_loss" not in row.get("required", [])  # summaries sealed before lack it


def test_a_results_per_channel_gradient_norms_are_typed(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    channels = schemas["ExperimentResult"]["properties"]["channels"]
    assert "channels" not in schemas["ExperimentResult"].get("required", [])  # version 3
    assert {"type": "null"} in channels["anyOf"]
    (mapping,) = [option for option in channels["anyOf"] if option.get("type") == "object"]
    assert mapping["additionalProperties"] == {"$ref": f"{COMPONENTS}LayerChannels"}
    layer = schemas["LayerChannels"]
    assert set(layer["required"]) == {"channels", "epoch", "step", "gradient_norm", "initial"}
    assert layer["properties"]["channels"] == {
        "type": "array",
        "items": {"type": "integer"},
        "title": "Channels",
        "description": layer["properties"]["channels"]["description"],
    }
    norms = layer["properties"]["gradient_norm"]
    assert norms["items"]["items"]["anyOf"] == [{"type": "number"}, {"type": "null"}]


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


# Objects free-form by nature: a fix's JSON merge patch, a study's axis values (any spec
# field's), Keras' build_config of a layer.
FREE_FORM = {
    ("PrescribedFix", "patch"),
    ("Prescription", "patch"),
    ("StudyConfigPublic", "values"),
    ("StudyRow", "values"),
    ("*Layer", "build_config"),
}


def free_form(node: Any) -> bool:
    """True for an object schema that says nothing of its members, or a schema holding one
    (an option, the items of an array, the values of a map)."""
    if not isinstance(node, dict):
        return False
    if (
        node.get("type") == "object"
        and "properties" not in node
        and node.get("additionalProperties", True) in (True, {})
    ):
        return True
    inner = [*node.get("anyOf", []), node.get("items"), node.get("additionalProperties")]
    return any(free_form(schema) for schema in inner)


def test_no_schema_is_a_free_form_object_but_those_free_form_by_nature(
    document: dict[str, Any],
) -> None:
    """A generated client reads a free-form object as an untyped dict: every object the
    document describes has its members' types, bar the few that have no fixed shape."""
    found = set()
    for name, schema in document["components"]["schemas"].items():
        for member, property_schema in schema.get("properties", {}).items():
            if free_form(property_schema):
                found.add(("*Layer" if name.endswith("Layer") else name, member))
        assert not free_form(schema), name
    assert found == FREE_FORM


def test_the_dataset_section_is_a_union_keyed_on_kind(document: dict[str, Any]) -> None:
    """Every kind maps to the one member that takes it, and neither member takes the
    other's fields: a kind added later without its member fails here."""
    schemas = document["components"]["schemas"]
    section = schemas["DatasetSpec"]
    discriminator = section["discriminator"]
    assert discriminator["propertyName"] == "kind"
    mapping = discriminator["mapping"]
    assert set(mapping) == {kind.value for kind in DatasetKind}
    assert [member["$ref"] for member in section["oneOf"]] == [
        mapping["uploaded"],
        mapping["circles"],
    ]
    assert {mapping[kind.value] for kind in BUILTIN_KINDS} == {mapping["circles"]}
    uploaded = schemas[mapping["uploaded"].removeprefix(COMPONENTS)]
    builtin = schemas[mapping["circles"].removeprefix(COMPONENTS)]
    assert uploaded["additionalProperties"] is False and builtin["additionalProperties"] is False

    assert set(uploaded["properties"]) == UPLOADED_FIELDS
    assert uploaded["properties"]["kind"]["const"] == "uploaded"
    assert sorted(uploaded["required"]) == ["id", "kind"]
    assert uploaded["properties"]["id"]["pattern"] == DATASET_ID_PATTERN
    assert uploaded["properties"]["data"]["readOnly"] is True

    builtin_kind = builtin["properties"]["kind"]
    assert builtin_kind["enum"] == [kind.value for kind in BUILTIN_KINDS]
    assert builtin_kind["default"] == "circles"
    assert "required" not in builtin  # `{}` is circles
    assert set(builtin["properties"]) == set(DatasetSpec.model_fields) - {"id", "data"}
    assert builtin["properties"]["n_samples"]["maximum"] == Limits.SAMPLES

    dataset_section = {"$ref": f"{COMPONENTS}DatasetSpec"}
    assert schemas["ExperimentSpec"]["properties"]["dataset"]["$ref"] == dataset_section["$ref"]
    dataset_axis = schemas["StudyCreate"]["properties"]["axes"]["properties"]["dataset"]
    assert dataset_axis["items"] == dataset_section


UPLOADED_ID = "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"
UPLOADED_DATA = {"name": "mine.csv", "samples": 200, "sample_shape": [5], "classes": 3}


@pytest.mark.parametrize(
    "dataset",
    [
        {},
        {"kind": "moons", "n_samples": 300, "noise": 0.2},
        {"kind": "iris", "standardize": False, "validation_split": 0.2},
        {"kind": "uploaded", "id": UPLOADED_ID},
        {"kind": "uploaded", "id": UPLOADED_ID, "validation_split": 0.1, "data": UPLOADED_DATA},
        {"kind": "uploaded", "id": UPLOADED_ID, "n_samples": 100},
        {"kind": "uploaded"},
        {"kind": "uploaded", "id": "not-an-id"},
        {"kind": "circles", "id": UPLOADED_ID},
        {"kind": "circles", "data": UPLOADED_DATA},
        {"kind": "blobs", "centers": Limits.CENTERS + 1},
        {"kind": "nope"},
        {"n_samples": 100, "colour": "red"},
    ],
)
def test_the_published_dataset_section_takes_what_validates(
    document: dict[str, Any], dataset: dict[str, Any]
) -> None:
    published = OAS31Validator(
        {"$ref": f"{COMPONENTS}DatasetSpec", "components": document["components"]}
    )
    try:
        DatasetSpec.model_validate(dataset)
    except ValidationError:
        valid = False
    else:
        valid = True
    assert published.is_valid(dataset) is valid
