"""The console's and the dashboard's pages as HTTP sees them (the browser tests in tests/ui
drive them for real), and the metrics route's server-side downsampling for charts."""

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.events import service as events
from app.events.schemas import NewEvent
from app.ui.router import VENDOR
from tests.client import small_job

VENDORED = json.loads((VENDOR / "versions.json").read_text())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_console_pages_load_nothing_from_another_host(client: TestClient, page: str) -> None:
    response = client.get(page)

    assert response.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert "fonts.googleapis" not in response.text
    policy = response.headers["content-security-policy"]
    assert "img-src 'self' data:" in policy
    for script in re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL):
        assert "'sha256-" in policy and "unsafe-inline" not in policy.split("script-src")[1]
        assert script.strip()
    for source in sources:
        assert client.get(source).status_code == 200, source


def test_vendored_files_are_the_pinned_packages_with_their_licenses() -> None:
    assert set(VENDORED) == {"swagger-ui-dist", "redoc", "uplot"}
    for name, entry in VENDORED.items():
        files = sorted(p.name for p in (VENDOR / name).iterdir())
        assert files == entry["files"] and "LICENSE" in files, name
        assert entry["integrity"].startswith("sha512-")
        assert f"/{name}/-/{name}-{entry['version']}.tgz" in entry["tarball"]


def test_dashboard_page_runs_no_inline_script(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy
    assert "connect-src 'self'" in policy
    assert re.findall(r"<script[^>]*>\s*</script>", response.text) == re.findall(
        r"<script[^>]*>.*?</script>", response.text, re.DOTALL
    )
    module = client.get("/ui/main.js")
    assert module.status_code == 200
    assert "javascript" in module.headers["content-type"]


def test_dashboard_modules_never_write_html_from_strings() -> None:
    static = Path(VENDOR).parent / "static"
    for module in static.glob("*.js"):
        text = module.read_text()
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, module.name
        assert "document.write" not in text, module.name


def test_openapi_describes_the_streams(client: TestClient) -> None:
    description = client.get("/openapi.json").json()["info"]["description"]

    for words in ("/v1/jobs/{job_id}/stream", "after=", "taas.bearer", "4404", "1000"):
        assert words in description


@pytest.mark.usefixtures("backend")
def test_metrics_are_downsampled_by_min_and_max_per_bucket(client: TestClient) -> None:
    job = client.post("/v1/jobs", json=small_job()).json()
    losses = [1.0 + (i % 7) / 100 for i in range(3000)]
    losses[1234], losses[2345] = 9.0, 0.001  # a spike and a dip the chart must keep
    new = [
        NewEvent(type="metric", data={"scope": "step", "step": i + 1, "train_loss": loss})
        for i, loss in enumerate(losses)
    ]
    new[::300] = [
        NewEvent(type="metric", data={"scope": "epoch", "epoch": e, "val_loss": 0.5})
        for e in range(10)
    ]
    new.append(NewEvent(type="log", data={"level": "info", "message": "after the metrics"}))
    with client.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        events.append(session, job["id"], new)
        session.commit()
    first = client.get(f"/v1/jobs/{job['id']}").json()["last_seq"] - len(new)

    page = client.get(f"/v1/jobs/{job['id']}/metrics", params={"max_points": 200}).json()
    items = page["items"]

    assert 100 <= len(items) <= 200
    seqs = [item["seq"] for item in items]
    assert seqs == sorted(set(seqs))
    assert [i["data"]["epoch"] for i in items if i["data"]["scope"] == "epoch"] == list(range(10))
    kept = {i["data"]["train_loss"] for i in items if i["data"]["scope"] == "step"}
    assert {9.0, 0.001} <= kept
    assert page["last_seq"] == first + 3000  # the newest metric, not the log after it

    everything = client.get(f"/v1/jobs/{job['id']}/metrics", params={"max_points": 5000}).json()
    assert len(everything["items"]) == 3000
    later = client.get(f"/v1/jobs/{job['id']}/metrics", params={"after": first + 2990}).json()
    assert [i["seq"] for i in later["items"]] == list(range(first + 2991, first + 3001))


@pytest.mark.parametrize("max_points", [0, 1, 100_001, "many"])
def test_metrics_max_points_out_of_range_is_a_422(client: TestClient, max_points: object) -> None:
    job = client.post("/v1/jobs", json=small_job()).json()

    response = client.get(f"/v1/jobs/{job['id']}/metrics", params={"max_points": max_points})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "max_points"
