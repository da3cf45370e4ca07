"""The API's one error format: every error answer is `{"error": {code, message, details}}`,
with the field that is wrong named as the client wrote it."""

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app import request_errors
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


def error_body(code: str, message: str, details: Iterable[ErrorDetail] = ()) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": [d.as_json() for d in details]}}


def validation_details(error: RequestValidationError) -> list[ErrorDetail]:
    details = []
    for problem in error.errors():
        if problem.get("type") == "json_invalid":
            details.append(
                ErrorDetail("body", request_errors.json_syntax_message(problem, error.body))
            )
            continue
        message = request_errors.plain(str(problem.get("msg", "invalid")))
        unknown = problem.get("type") == "extra_forbidden"
        if unknown:
            message = "unknown field"
        field = field_path(problem.get("loc", ()), unknown_field=unknown)
        if field == "body":
            field = request_errors.field_named_in(message) or field
        field, message = request_errors.union_tag(problem, field) or (field, message)
        details.append(ErrorDetail(field, message))
    return details


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers on this path, asked of the routes themselves."""
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, error: AppError) -> JSONResponse:
        body = error_body(error.code, error.message, error.details)
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        if (why := request_errors.not_json_content(request, list(error.errors()))) is not None:
            body = error_body("unsupported_media_type", why, [ErrorDetail("body", why)])
            return JSONResponse(body, status_code=415)
        details = validation_details(error)
        message = "; ".join(f"{d.field}: {d.message}" for d in details[:5]) or "invalid request"
        code = request_errors.validation_code(request)
        return JSONResponse(error_body(code, message, details), status_code=422)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, error: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error.body(), status_code=413)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if isinstance(error.__cause__, RecursionError):
            # JSON nested past the parser's stack (FastAPI's 400): as invalid as any spec.
            message = "the JSON body nests too deep to parse"
            details = [ErrorDetail("body", message)]
            return JSONResponse(error_body("validation_error", message, details), status_code=422)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Starlette names only the first route of the path; GET and POST of one path
            # are two routes, and Allow must list every method the path has.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(
            error_body(code, str(error.detail)), status_code=error.status_code, headers=headers
        )

    @app.exception_handler(OperationalError)
    async def database_down(_: Request, error: OperationalError) -> JSONResponse:
        logger.warning("database unavailable: %s", error)
        return JSONResponse(
            error_body("unavailable", "the database is unavailable; try again"), status_code=503
        )
