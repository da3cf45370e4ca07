"""The served OpenAPI document equals the committed copy: every contract change is a diff.

Regenerate after an intended change:
    TAAS_UPDATE_OPENAPI=1 pytest tests/api/test_openapi_document.py
"""

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

COMMITTED = Path(__file__).with_name("openapi.json")


def test_served_document_matches_the_committed_copy(client: TestClient) -> None:
    served = json.dumps(client.get("/openapi.json").json(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("TAAS_UPDATE_OPENAPI") == "1":
        COMMITTED.write_text(served)
    assert COMMITTED.exists(), "no tests/api/openapi.json: run with TAAS_UPDATE_OPENAPI=1"
    assert served == COMMITTED.read_text(), (
        "the served OpenAPI document differs from tests/api/openapi.json; review the "
        "change and regenerate with TAAS_UPDATE_OPENAPI=1"
    )
