"""The dashboard at /, in Chromium, on a live `taas up`: sign-in, the jobs list, a running
job's curve followed point by point through a dropped websocket, compare, a sweep, cancel,
another tenant's job, and a job name that is a script."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.ui.conftest import Stack, Tab

SCRIPT_NAME = "<script>alert(1)</script>"
TERMINAL = ("succeeded", "failed", "cancelled")


def job_spec(
    name: str, *, samples: int = 512, epochs: int = 3, lr: float = 0.01, batch_size: int = 32
) -> dict[str, Any]:
    return SEED_JOB_EXAMPLE | {
        "name": name,
        "dataset": {"name": "synthetic", "samples": samples},
        "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9},
        "training": SEED_JOB_EXAMPLE["training"]
        | {"epochs": epochs, "batch_size": batch_size, "target": None},
        "tags": ["ui-test"],
    }


def submit(client: httpx.Client, spec: dict[str, Any]) -> str:
    created = client.post("/v1/jobs", json=spec)
    assert created.status_code == 201, created.text
    job_id: str = created.json()["id"]
    return job_id


def wait_until(check: Callable[[], Any], timeout_s: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout_s} s")


def finished(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in TERMINAL else None

    result: dict[str, Any] = wait_until(done)
    return result


def sign_in(tab: Tab, stack: Stack, tenant: str) -> None:
    tab.page.goto(f"{stack.url}/")
    tab.page.locator("#key").fill(stack.keys[tenant])
    tab.page.locator("#sign-in button").click()
    tab.page.locator("#jobs-body").wait_for()


@pytest.fixture(scope="module")
def alice(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client("alice") as client:
        yield client


def test_signs_in_lists_jobs_and_shows_a_script_name_as_text(
    stack: Stack, tab: Tab, alice: httpx.Client
) -> None:
    job_id = submit(alice, job_spec(SCRIPT_NAME, epochs=1))
    tab.page.goto(f"{stack.url}/")
    tab.page.locator("#key").fill("taas_not-a-key")
    tab.page.locator("#sign-in button").click()
    tab.page.get_by_text("That key is not valid.").wait_for()
    sign_in(tab, stack, "alice")

    name = tab.page.locator(f"#job-{job_id} .job-name")
    assert name.text_content() == SCRIPT_NAME
    tab.page.locator(f"#job-{job_id} .job-name").click()
    tab.page.locator("#job-name").wait_for()
    assert tab.page.locator("#job-name").text_content() == SCRIPT_NAME
    assert tab.dialogs == []
    assert tab.errors == []
    assert tab.requests.elsewhere == []
    # The key never travels in a URL.
    assert not [url for url in tab.requests.local if stack.keys["alice"] in url]


def test_follows_a_running_job_through_a_dropped_websocket(
    stack: Stack, tab: Tab, alice: httpx.Client
) -> None:
    # 3,000 small steps: seconds on an idle machine, minutes on a loaded one; its stream is
    # dropped at the first point drawn, well before the end.
    job_id = submit(alice, job_spec("followed", samples=16_000, epochs=6))
    sign_in(tab, stack, "alice")
    wait_until(lambda: alice.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
    tab.page.goto(f"{stack.url}/#/jobs/{job_id}")
    curves = tab.page.locator("#curves")

    def points() -> int:
        return int(curves.get_attribute("data-points") or 0)

    seen = wait_until(points)
    assert curves.get_attribute("data-state") == "live"
    tab.page.locator("#reconnect").click()  # drop the socket as a network failure would
    wait_until(lambda: points() > seen)  # points keep arriving: the stream resumed
    wait_until(lambda: curves.get_attribute("data-state") == "complete", timeout_s=600)

    job = alice.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    metrics = alice.get(f"/v1/jobs/{job_id}/metrics", params={"max_points": 100_000}).json()
    assert points() == len(metrics["items"])
    assert curves.get_attribute("data-gaps") == "0"
    assert curves.get_attribute("data-dupes") == "0"
    assert int(curves.get_attribute("data-reconnects") or 0) >= 1
    assert curves.get_attribute("data-last-seq") == str(job["last_seq"])
    tab.page.locator("h1 .status-succeeded").wait_for()
    assert tab.page.locator("#timing-bar span").count() >= 3
    assert tab.page.locator("#checkpoints tr").count() >= 1
    assert tab.errors == []


def test_compares_two_jobs(stack: Stack, tab: Tab, alice: httpx.Client) -> None:
    first = submit(alice, job_spec("slow-lr", lr=0.001))
    second = submit(alice, job_spec("fast-lr", lr=0.05))
    finished(alice, first)
    finished(alice, second)
    sign_in(tab, stack, "alice")
    tab.page.goto(f"{stack.url}/#/compare?ids={first},{second}")
    tab.page.locator("#compare-chart canvas").first.wait_for()
    assert tab.page.locator("#time-to-target tr").count() == 2
    rows = tab.page.locator("#spec-diff tbody tr")
    fields = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert fields == ["name", "optimizer.lr"]
    assert tab.errors == []


def test_shows_a_sweep(stack: Stack, tab: Tab, alice: httpx.Client) -> None:
    body = {
        "base": job_spec("swept", epochs=2),
        "space": {"optimizer.lr": [0.01, 0.05]},
        "objective": {"maximize": "val_accuracy"},
        "budget": {"max_trials": 2, "max_parallel": 1},
    }
    created = alice.post("/v1/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    sign_in(tab, stack, "alice")
    tab.page.goto(f"{stack.url}/#/sweeps/{sweep_id}")
    tab.page.locator("#sweep-name").wait_for()
    # Live over the sweep stream: the page shows the sweep's end without a reload.
    tab.page.locator("#sweep .status-succeeded").first.wait_for(timeout=240_000)
    assert tab.page.locator("#leaderboard tbody tr").count() == 2
    assert tab.page.locator("#explanation li").count() >= 1
    tab.page.locator("#submit-best").click()
    tab.page.locator("#job-name").wait_for()
    assert tab.errors == []


def test_cancels_one_job_and_the_selected_ones(stack: Stack, tab: Tab, alice: httpx.Client) -> None:
    ids = [submit(alice, job_spec(f"long-{i}", samples=16_000, epochs=500)) for i in range(3)]
    sign_in(tab, stack, "alice")
    tab.page.locator(f"#job-{ids[0]} button.cancel").click()
    tab.page.locator(f"#job-{ids[0]}[data-status='cancelled']").wait_for()
    for job_id in ids[1:]:
        tab.page.locator(f"#job-{job_id} input[type=checkbox]").check()
    tab.page.locator("#cancel-selected").click()
    for job_id in ids[1:]:
        tab.page.locator(f"#job-{job_id}[data-status='cancelled']").wait_for()
    for job_id in ids:
        assert finished(alice, job_id)["status"] == "cancelled"


def test_another_tenants_job_is_not_found(stack: Stack, tab: Tab, alice: httpx.Client) -> None:
    job_id = alice.get("/v1/jobs").json()["items"][0]["id"]
    sign_in(tab, stack, "bob")
    tab.page.goto(f"{stack.url}/#/jobs/{job_id}")
    tab.page.locator("#not-found").wait_for()
    assert tab.page.locator(f"#job-{job_id}").count() == 0
