"""Nothing a client POSTs to /v1/jobs produces a 5xx: random JSON, and the seed example with
one part replaced by junk, are either queued (201) or refused with a 4xx that stores nothing.

SQLite only: Postgres-specific failures found this way (NUL characters, NaN) have their own
tests in test_jobs.py, which runs on both databases.
"""

import copy
import json
import re
from typing import Any

import hypothesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from app.spec.schemas import SEED_JOB_EXAMPLE

FUZZ_EXAMPLES = 100
JSON_HEADERS = {"content-type": "application/json"}

Path = tuple[str | int, ...]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
junk = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path into `value`: each dict key and list index, at every depth."""
    found: list[Path] = []
    children: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


SEED_PATHS = paths(SEED_JOB_EXAMPLE)


def reach(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def mutated_seeds(draw: st.DrawFn) -> Any:
    """The seed example with one field replaced by junk, removed, or a junk field added."""
    spec = copy.deepcopy(SEED_JOB_EXAMPLE)
    path = draw(st.sampled_from(SEED_PATHS))
    parent = reach(spec, path[:-1])
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(junk)
    elif action == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=12))] = draw(junk)
    else:
        parent.append(draw(junk))
    return spec


bodies = (
    junk.map(lambda value: json.dumps(value).encode())
    | mutated_seeds().map(lambda spec: json.dumps(spec).encode())
    | st.binary(max_size=64)
)


def stored_jobs(client: TestClient) -> int:
    """Every job is queued (no worker runs), so the queued gauge counts them all."""
    match = re.search(r'^taas_jobs\{status="queued"\} (\S+)$', client.get("/metrics").text, re.M)
    assert match
    return int(float(match.group(1)))


@hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    # One app and database for every example: jobs a body queues only make the list longer.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=bodies)
def test_submit_answers_201_or_4xx_never_5xx_when_body_is_arbitrary(
    client: TestClient, body: bytes
) -> None:
    before = stored_jobs(client)

    response = client.post("/v1/jobs", content=body, headers=JSON_HEADERS)
    hypothesis.event("answered", response.status_code)

    assert response.status_code == 201 or 400 <= response.status_code < 500, response.text
    if response.status_code == 201:
        assert response.json()["status"] == "queued"
        assert stored_jobs(client) == before + 1
    else:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"}
        assert stored_jobs(client) == before
