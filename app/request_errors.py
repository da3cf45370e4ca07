"""How a request that fails validation is told: one vocabulary for the error handler.

Spec mistakes are all `invalid_spec`, whichever layer found them (pydantic or the
service); fields are dotted paths, messages plain words, JSON syntax errors say where,
and a body that is not sent as JSON says so instead of failing as a wrong type.
"""

import re
from typing import Any

from starlette.requests import Request

# The routes whose body is a job spec (or a part of one): their mistakes are spec mistakes.
SPEC_ROUTES = frozenset({"/v1/jobs", "/v1/sweeps", "/v1/advise", "/v1/models/summary"})
# pydantic's prefixes that say which kind of Python error a validator raised.
PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")
# A cross-field check on the whole spec names its field first: "training.batch_size 64 ...".
LEADING_FIELD = re.compile(r"^((?:[a-z_]+)(?:\.[a-z_]+|\[\d+\])+)\b")


def validation_code(request: Request) -> str:
    return "invalid_spec" if request.url.path in SPEC_ROUTES else "validation_error"


def plain(message: str) -> str:
    for prefix in PYDANTIC_PREFIXES:
        message = message.removeprefix(prefix)
    return message


def field_named_in(message: str) -> str | None:
    """The dotted field a whole-object check's message starts with, if any."""
    found = LEADING_FIELD.match(message)
    return found.group(1) if found else None


def union_tag(problem: dict[str, Any], field: str) -> tuple[str, str] | None:
    """A wrong or missing `type`/`name` tag is a mistake in that key: name it, in words."""
    ctx = problem.get("ctx") or {}
    key = str(ctx.get("discriminator", "")).strip("'\"")
    if problem.get("type") not in ("union_tag_invalid", "union_tag_not_found") or not key:
        return None
    where = f"{field}.{key}" if field != "body" else key
    if problem["type"] == "union_tag_not_found":
        return where, "missing: give one of the known values"
    expected = str(ctx.get("expected_tags", "")).replace("'", "")
    return where, f"unknown {key} {ctx.get('tag')!r}; expected one of: {expected}"


def json_syntax_message(problem: dict[str, Any], document: Any) -> str:
    """`not valid JSON at line L, column C: <why>` from FastAPI's json_invalid error."""
    why = str((problem.get("ctx") or {}).get("error", "syntax error"))
    loc = problem.get("loc", ())
    position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    if position is None or not isinstance(document, str):
        return f"the request body is not valid JSON: {why}"
    line = document.count("\n", 0, position) + 1
    column = position - document.rfind("\n", 0, position)
    return f"the request body is not valid JSON at line {line}, column {column}: {why}"


def not_json_content(request: Request, problems: list[dict[str, Any]]) -> str | None:
    """Why a body was not read as JSON, when its content type is not JSON; else None."""
    content_type = request.headers.get("content-type", "")
    if any(kind in content_type.lower() for kind in ("json", "form")):
        return None
    # A JSON route given other bytes fails on the body as a whole, not on one of its fields.
    if not any(tuple(p.get("loc", ())) == ("body",) for p in problems):
        return None
    sent = f"it was sent as {content_type!r}" if content_type else "it was sent without one"
    return f"send the body as JSON with Content-Type: application/json ({sent})"
