"""ErrorCode in the document names every code the API can answer, and only those."""

import importlib
import pkgutil
import re
from typing import get_args

import app
from app.errors import AppError
from app.openapi import ErrorCode
from tests.conftest import ROOT

# Codes written where an answer is built without an AppError (handlers, middleware).
LITERAL_CODE = re.compile(r'(?:error_body|BodyTooLarge)\(\s*"([a-z_]+)"|:\s*"([a-z_]+)"\}\.get\(')


def subclasses(cls: type[AppError]) -> set[type[AppError]]:
    found = set(cls.__subclasses__())
    return found.union(*(subclasses(c) for c in found))


def test_error_code_lists_every_code_the_api_answers() -> None:
    for module in pkgutil.walk_packages(app.__path__, "app."):
        if not module.name.endswith(".__main__"):  # runs a command when imported
            importlib.import_module(module.name)
    raised = {cls.code for cls in subclasses(AppError)} | {AppError.code}
    written: set[str] = set()
    for source in (ROOT / "app").rglob("*.py"):
        for match in LITERAL_CODE.finditer(source.read_text()):
            written |= {code for code in match.groups() if code}
    handled = {"not_found", "method_not_allowed", "http_error"}
    documented = set(get_args(ErrorCode.__value__))
    assert raised <= documented, f"codes missing from ErrorCode: {raised - documented}"
    assert written <= documented, f"codes missing from ErrorCode: {written - documented}"
    unused = documented - raised - written - handled
    assert not unused, f"ErrorCode names codes nothing answers: {unused}"
