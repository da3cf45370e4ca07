"""The hand-written client (the `taas` command) asks only for what the document serves.

It stays hand-written for its ergonomics; this reads its source and checks every path it
names against the served OpenAPI document (and the AsyncAPI one for streams), with the
method it uses and the query parameters it passes, so the two cannot drift.
"""

import ast
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ROOT

# How the client's calls name their method: client.get(...), client.stream("GET", ...).
METHODS = {
    "get": "get",
    "post": "post",
    "delete": "delete",
    "put": "put",
    "patch": "patch",
    "upload": "post",
    "download": "get",
    "_download": "get",
}
NOT_QUERY = {"params", "json", "data", "files", "headers", "timeout", "content", "body"}


def client_sources() -> list[Path]:
    return sorted([*ROOT.glob("app/cli.py"), *ROOT.glob("app/cli/*.py")])


def literal_path(node: ast.AST) -> str | None:
    """A "/v1/..." string or f-string, with each interpolation as `{}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    else:
        return None
    return text if text.startswith("/v1/") else None


def calls(tree: ast.AST) -> list[tuple[str | None, str, set[str]]]:
    """(method or None, path, query keywords) for every /v1 path the source names."""
    found: list[tuple[str | None, str, set[str]]] = []
    in_calls: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        args = node.args
        method = METHODS.get(name)
        if name == "stream" and isinstance(args[0], ast.Constant) and len(args) > 1:
            method, args = str(args[0].value).lower(), args[1:]
        path = literal_path(args[0])
        if path is None:
            continue
        in_calls.add(id(args[0]))
        keywords = {k.arg for k in node.keywords if k.arg and k.arg not in NOT_QUERY}
        found.append((method, path, keywords))
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        path = literal_path(node)
        if path is not None and id(node) not in in_calls and id(node) not in parts:
            found.append((None, path, set()))
    return found


def template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)))


def documented(path: str, templates: dict[str, Any]) -> str | None:
    concrete = path.split("?")[0].replace("{}", "x")
    for template in templates:
        if template_regex(template).fullmatch(concrete):
            return template
    return None


def test_the_cli_names_only_documented_operations(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    asyncapi = client.get("/asyncapi.json").json()
    streams = {c["address"]: c for c in asyncapi["channels"].values()}
    sources = client_sources()
    assert sources, "no client source found (app/cli.py or app/cli/)"
    checked = 0
    for source in sources:
        for method, path, keywords in calls(ast.parse(source.read_text())):
            where = f"{source.relative_to(ROOT)}: {method or 'a reference to'} {path}"
            template = documented(path, openapi["paths"])
            if template is None:
                assert documented(path, streams), f"{where}: not in the API's documents"
                continue
            operations = openapi["paths"][template]
            if method is not None:
                assert method in operations, f"{where}: {template} has no {method.upper()}"
                names = {p["name"] for p in operations[method].get("parameters", [])}
                assert keywords <= names, f"{where}: unknown query {keywords - names}"
            checked += 1
    assert checked >= 10  # the client's calls were found, not an empty scan
