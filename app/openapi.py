"""The OpenAPI document as a product: what client generators turn into typed clients.

FastAPI writes the document from the routes and models; this module declares the error
answers each route can give, and tidies the few places where pydantic's JSON Schema is
valid but not usable by generators (openapi-python-client, openapi-typescript): a
`default` beside a `oneOf`, `const` where an `enum` parses, uploads without
`format: binary`, FastAPI's own validation-error schema that the API never sends.
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, TypeAdapter, WithJsonSchema
from typing_extensions import TypeAliasType

from app.asyncapi import asyncapi_document

ErrorCode = TypeAliasType(
    "ErrorCode",
    Literal[
        "bad_request",
        "validation_error",
        "invalid_spec",
        "invalid_upload",
        "invalid_cursor",
        "invalid_transition",
        "unauthorized",
        "admin_only",
        "not_found",
        "job_not_found",
        "dataset_not_found",
        "checkpoint_not_found",
        "sweep_not_found",
        "key_not_found",
        "no_final_weights",
        "method_not_allowed",
        "idempotency_key_reused",
        "dataset_in_use",
        "fence_lost",
        "checkpoint_file_missing",
        "body_too_large",
        "upload_too_large",
        "storage_quota_exceeded",
        "unsupported_media_type",
        "rate_limited",
        "too_many_jobs",
        "unavailable",
        "http_error",
    ],
)


class ErrorDetailOut(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: ErrorCode = Field(
        description="Stable, machine-readable: job_not_found, rate_limited, ..."
    )
    message: str
    details: list[ErrorDetailOut] = Field(description="Per field, for validation errors.")


class ErrorOut(BaseModel):
    """Every error answer of the API."""

    error: ErrorInfo


ERROR_DESCRIPTIONS = {
    400: "Malformed request (a NUL character in the path or query).",
    401: "No key, or an unknown or revoked one.",
    403: "The key may not do this.",
    404: "No such object for this tenant.",
    409: "Conflicts with the object's state.",
    410: "The object's file is gone.",
    413: "The body is over its limit.",
    415: "The body is not sent as JSON.",
    422: "Invalid input, with the field that is wrong.",
    429: "Over the tenant's rate or job caps; retry after Retry-After seconds.",
    503: "The database is unavailable.",
}
ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
BINARY = {"type": "string", "format": "binary"}


def error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    }
    if status == 429:
        response["headers"] = RETRY_AFTER
    return response


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's own error answers (404, 409, 410, 403); every /v1 route also gets 400,
    401, 429 and 503, and 413 and 422 when it takes a body or parameters."""
    return {status: error_response(status) for status in statuses}


def binary_download(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {"application/octet-stream": {"schema": BINARY}},
        }
    }


def declared_as(component: str) -> WithJsonSchema:
    """Declare a stored dict as the component it was dumped from (a stored JobSpec), which
    is not validated again on every read. pydantic cannot refer to a component it does not
    generate, so the reference is written in here, after generation."""
    return WithJsonSchema({"x-component": component})


def operation_id(route: APIRoute) -> str:
    """The route's function name: `submit_job`, `get_job`, ... as a person would write them."""
    return route.name


def install(app: FastAPI, components: Sequence[Any] = ()) -> None:
    """Serve the tidied document at /openapi.json (built once, on first request), with
    `components` (types no route names directly, such as the typed events)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            add_components(document, [ErrorOut, *components])
            tidy(document)
            app.openapi_schema = document
        return app.openapi_schema

    def asyncapi() -> JSONResponse:
        return JSONResponse(asyncapi_document(openapi()))

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_api_route("/asyncapi.json", asyncapi, include_in_schema=False)


def add_components(document: dict[str, Any], types: Sequence[Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for type_ in types:
        schema = TypeAdapter(type_).json_schema(
            mode="serialization", ref_template="#/components/schemas/{model}"
        )
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        if "$ref" not in schema:
            schemas.setdefault(type_.__name__, schema)


def tidy(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, item in document["paths"].items():
        for operation in item.values():
            tidy_operation(path, operation)
    renames = {
        name: "".join(word.capitalize() for word in name.removeprefix("Body_").split("_")) + "Form"
        for name in schemas
        if name.startswith("Body_")
    }
    for old, new in renames.items():
        schemas[new] = schemas.pop(old)
        schemas[new]["title"] = new
    for node in walk(document):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in renames:
            node["$ref"] = "#/components/schemas/" + renames[ref.rsplit("/", 1)[-1]]
        tidy_schema(node)
    for schema in schemas.values():
        add_discriminator(schema, schemas)
    drop_unreferenced(document)


def drop_unreferenced(document: dict[str, Any]) -> None:
    """Components nothing refers to (EventOut, declared as Event) would only mislead."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    while True:
        used = {
            node["$ref"].rsplit("/", 1)[-1]
            for node in walk({"paths": document["paths"], "schemas": schemas})
            if isinstance(node.get("$ref"), str)
        }
        unused = [name for name in schemas if name not in used]
        if not unused:
            return
        for name in unused:
            del schemas[name]


def tidy_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    # A bare path id is looked up, not validated (404, not 422); queries, headers, bodies
    # and constrained values can be invalid.
    takes_input = bool(operation.get("requestBody")) or any(
        parameter["in"] != "path" or set(parameter["schema"]) - {"type", "title"}
        for parameter in operation.get("parameters", [])
    )
    statuses = set()
    if path.startswith("/v1/"):
        statuses |= {400, 401, 429, 503}
        if operation.get("requestBody"):
            statuses.add(413)
        if "application/json" in operation.get("requestBody", {}).get("content", {}):
            statuses.add(415)
    if takes_input:
        statuses.add(422)
    else:
        responses.pop("422", None)
    for status in statuses:
        responses[str(status)] = error_response(status)


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def tidy_schema(node: dict[str, Any]) -> None:
    if "x-component" in node:
        node["$ref"] = "#/components/schemas/" + node.pop("x-component")
    # A generated model cannot carry an object default: the server applies it, the
    # description says it.
    default = node.get("default")
    if isinstance(default, dict) and ("oneOf" in node or "anyOf" in node or "$ref" in node):
        del node["default"]
        described = node.get("description", "").rstrip(".")
        node["description"] = f"{described}. Default: {json.dumps(default)}.".lstrip(". ")
    # A one-value string enum parses in every generator; `const` inside an anyOf with a
    # boolean or integer makes some reject `false` and integers.
    if "const" in node and node.get("type") == "string":
        node["enum"] = [node.pop("const")]
    # Uploads: `format: binary` is what generators read as a file part.
    if node.get("contentMediaType") == "application/octet-stream":
        node.pop("contentMediaType")
        node["format"] = "binary"
    options = node.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if other.get("format") == "binary" or other.get("contentMediaType"):
            del node["anyOf"]
            node.update(BINARY)


def add_discriminator(schema: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A union of objects told apart by one tagged field becomes a discriminated oneOf."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if not options or "discriminator" in schema or not all("$ref" in o for o in options):
        return
    mapping: dict[str, str] = {}
    for tag in ("type", "name"):
        mapping = {}
        for option in options:
            target = schemas.get(option["$ref"].rsplit("/", 1)[-1], {})
            enum = target.get("properties", {}).get(tag, {}).get("enum", [])
            for value in enum:
                mapping[value] = option["$ref"]
        if len(mapping) >= len(options):
            break
    else:
        return
    schema.pop("anyOf", None)
    schema["oneOf"] = options
    schema["discriminator"] = {"propertyName": tag, "mapping": mapping}
