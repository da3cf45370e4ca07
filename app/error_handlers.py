"""The API's one error format: every error answer is `{"error": {code, message, details}}`,
with the field that is wrong named as the client wrote it."""

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from app.errors import AppError, ErrorDetail
from app.limits import BodyTooLarge
from app.spec.layers import LAYER_TYPES

logger = logging.getLogger(__name__)

# Union members pydantic names in an error's location; a field path skips them, so the
# user sees `model.layers[3].out_features`, not `model.layers.3.linear.out_features`.
UNION_TAGS = frozenset(
    {*LAYER_TYPES, "sgd", "adam", "adamw", "rmsprop", "adagrad"}
    | {"constant", "step", "cosine", "onecycle", "plateau", "str", "int", "float", "bool"}
    | {"tuple", "literal", "none"}
)


def field_path(loc: Sequence[Any], *, unknown_field: bool = False) -> str:
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    path = ""
    for i, part in enumerate(parts):
        named = unknown_field and i == len(parts) - 1  # the client's own key: keep it as sent
        if isinstance(part, int):
            path += f"[{part}]"
        elif not named and (part in UNION_TAGS or "[" in part or part[:1].isupper()):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or (str(loc[0]) if loc else "body")


class ErrorDetailOut(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable, machine-readable: job_not_found, rate_limited, ...")
    message: str
    details: list[ErrorDetailOut] = Field(description="Per field, for validation errors.")


class ErrorOut(BaseModel):
    """Every error answer of the API."""

    error: ErrorInfo


# The answers any /v1 route may give besides its own: in the OpenAPI document, so clients
# and the schema fuzzer know them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in {
        400: "Malformed request.",
        401: "No key, or an unknown or revoked one.",
        403: "The key may not do this.",
        404: "No such object for this tenant.",
        409: "Conflicts with the object's state.",
        410: "The object's file is gone.",
        413: "The body is over its limit.",
        422: "Invalid input, with the field that is wrong.",
        429: "Over the tenant's rate or job caps; see Retry-After.",
        503: "The database is unavailable.",
    }.items()
}


def error_body(code: str, message: str, details: Iterable[ErrorDetail] = ()) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": [d.as_json() for d in details]}}


def validation_details(error: RequestValidationError) -> list[ErrorDetail]:
    details = []
    for problem in error.errors():
        if problem.get("type") == "json_invalid":
            details.append(ErrorDetail("body", "the request body is not valid JSON"))
            continue
        message = str(problem.get("msg", "invalid"))
        unknown = problem.get("type") == "extra_forbidden"
        if unknown:
            message = "unknown field"
        details.append(
            ErrorDetail(field_path(problem.get("loc", ()), unknown_field=unknown), message)
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, error: AppError) -> JSONResponse:
        body = error_body(error.code, error.message, error.details)
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        details = validation_details(error)
        message = "; ".join(f"{d.field}: {d.message}" for d in details[:5]) or "invalid request"
        return JSONResponse(error_body("validation_error", message, details), status_code=422)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, error: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error.body(), status_code=413)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(error.detail)),
            status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(OperationalError)
    async def database_down(_: Request, error: OperationalError) -> JSONResponse:
        logger.warning("database unavailable: %s", error)
        return JSONResponse(
            error_body("unavailable", "the database is unavailable; try again"), status_code=503
        )
