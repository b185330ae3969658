"""The OpenAPI document as a contract a generated client can trust.

FastAPI writes the document from the routes; `contract_document` then makes a
few promises hold for every operation, whichever router declared it, so a new
route keeps them without doing anything (tests/api/test_contract.py walks every
operation to prove it):

- Every 4xx and 5xx, and `default` (any status not listed), is what api.errors
  sends: `application/problem+json` with the `ProblemDetails` schema. FastAPI's
  own 422 (`HTTPValidationError`, a shape the API never sends) is replaced.
  A route that documents another body for an error (/readyz's 503 is a probe's
  answer) keeps it.
- A body that is neither JSON nor text is bytes, `{type: string, format: binary}`,
  offered as `application/octet-stream` too: generators read that type as bytes
  and skip ones they do not know, such as `image/png`. A text body is a string.
- An event stream is `{type: string}`: OpenAPI 3.1.0 has no `itemSchema`, so the
  schema of one event moves to the `x-itemSchema` extension.
- Security is declared only where it is in force: API keys in keys mode, the
  metrics token when one is set. A generator makes any operation with a
  `security` entry demand an authenticated client.
- Request bodies the routes read themselves (to name their errors in their own
  words) are typed by their models (`typed_body`), added to the components here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, WithJsonSchema
from pydantic.json_schema import models_json_schema

from api.errors import PROBLEM_JSON

COMPONENTS = "#/components/schemas/"
PROBLEM_SCHEMA = {"$ref": f"{COMPONENTS}ProblemDetails"}
BINARY_SCHEMA = {"type": "string", "format": "binary"}
OCTET_STREAM = "application/octet-stream"
EVENT_STREAM = "text/event-stream"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# FastAPI's declarations of a 422 body the API never sends (api.errors answers problems).
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")

# Models named by `typed_body`, whose schemas the document's components must hold.
_BODY_MODELS: dict[str, type[BaseModel]] = {}


def typed_body(model: type[BaseModel]) -> WithJsonSchema:
    """An annotation documenting a body read as a plain dict as `model`.

    For a route that validates the body itself, so that its errors name the
    fields its own way: `Annotated[dict[str, Any], Body(...), typed_body(StudyCreate)]`.
    """
    _BODY_MODELS[model.__name__] = model
    return WithJsonSchema({"$ref": f"{COMPONENTS}{model.__name__}"}, mode="validation")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation of `document`."""
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def is_error(status: str) -> bool:
    return status == "default" or status[:1] in ("4", "5")


def _problem_response(status: str, response: dict[str, Any]) -> dict[str, Any]:
    if status == "default":
        description = "any other error"
    else:
        description = response.get("description") or HTTPStatus(int(status)).phrase
        if description == "Validation Error":  # FastAPI's own
            description = "a parameter or the body is invalid: `errors` names each field"
    return {
        **{key: value for key, value in response.items() if key != "content"},
        "description": description,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
    }


def _documents_its_own_body(response: dict[str, Any]) -> bool:
    """True for an error response declaring a JSON body that is not a problem."""
    for media in response.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        if (
            ref
            and ref != PROBLEM_SCHEMA["$ref"]
            and ref.removeprefix(COMPONENTS) not in (_FASTAPI_VALIDATION)
        ):
            return True
    return False


def _content(content: dict[str, Any]) -> dict[str, Any]:
    """A success's content with a schema for every media type (see the module's docstring)."""
    out: dict[str, Any] = {}
    for media_type, media in content.items():
        media = dict(media)
        essence = media_type.partition(";")[0].strip()
        if essence == EVENT_STREAM:
            item = media.pop("itemSchema", None)
            media.setdefault("schema", {"type": "string"})
            if item is not None:
                media["x-itemSchema"] = item
        elif essence == "application/json" or essence.endswith("+json"):
            pass
        elif essence.startswith("text/"):
            media.setdefault("schema", {"type": "string"})
        else:
            media.setdefault("schema", BINARY_SCHEMA)
        out[media_type] = media
    binary = [media for media in out.values() if media.get("schema") == BINARY_SCHEMA]
    if binary and OCTET_STREAM not in out:
        out[OCTET_STREAM] = {"schema": BINARY_SCHEMA}
    return out


def _secure(operation: dict[str, Any], in_force: set[str]) -> None:
    requirements = [
        requirement for requirement in operation.pop("security", []) if set(requirement) <= in_force
    ]
    if requirements:
        operation["security"] = requirements


def _add_body_models(schemas: dict[str, Any]) -> None:
    if not _BODY_MODELS:
        return
    _, top = models_json_schema(
        [(model, "validation") for model in _BODY_MODELS.values()],
        ref_template=COMPONENTS + "{model}",
    )
    for name, schema in top.get("$defs", {}).items():
        # A model the routes use too is there already, as FastAPI writes it: one schema per name.
        schemas.setdefault(name, schema)


def contract_document(document: dict[str, Any], *, security_in_force: Iterable[str]) -> None:
    """Make `document` (FastAPI's, changed in place) keep the promises of this module."""
    in_force = set(security_in_force)
    for _, _, operation in operations(document):
        responses = operation.setdefault("responses", {})
        responses.setdefault("default", {})
        for status, response in list(responses.items()):
            if is_error(status) and not _documents_its_own_body(response):
                responses[status] = _problem_response(status, response)
            elif "content" in response:
                response["content"] = _content(response["content"])
        _secure(operation, in_force)
    components = document.setdefault("components", {})
    schemes = components.get("securitySchemes", {})
    for name in list(schemes):
        if name not in in_force:
            del schemes[name]
    if not schemes:
        components.pop("securitySchemes", None)
    schemas = components.setdefault("schemas", {})
    _add_body_models(schemas)
    for name in _FASTAPI_VALIDATION:  # no response names them any more
        schemas.pop(name, None)


def install_contract(app: FastAPI, *, security_in_force: Iterable[str]) -> None:
    """Serve `app`'s document through `contract_document` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            contract_document(document, security_in_force=security_in_force)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
