"""The public API's OpenAPI document is a contract: a refactor must leave it byte-identical.

The committed copy is tests/api/openapi.json; after a deliberate change to the API,
regenerate it with `TAAS_UPDATE_OPENAPI=1 pytest tests/api/test_openapi_document.py` and
review the diff like any other change of the contract.
"""

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

SNAPSHOT = Path(__file__).with_name("openapi.json")
UPDATE = os.environ.get("TAAS_UPDATE_OPENAPI", "") == "1"


def rendered(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_served_openapi_document_equals_the_committed_copy(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    served = rendered(response.json())
    if UPDATE:
        SNAPSHOT.write_text(served)
    assert SNAPSHOT.exists(), "no committed copy: run with TAAS_UPDATE_OPENAPI=1 once"
    assert served == SNAPSHOT.read_text(), (
        "the OpenAPI document changed; if deliberate, regenerate tests/api/openapi.json "
        "with TAAS_UPDATE_OPENAPI=1 and review the diff"
    )
