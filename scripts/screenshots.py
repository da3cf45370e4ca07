"""Screenshots of the dashboard for the README, from a real run (`make screenshots`).

Starts `taas up` in a temporary directory, trains a few small jobs and a sweep on
synthetic data, and photographs the job page, the compare view and the sweep view with
Debian's Chromium into docs/screenshots/, so the pictures never drift from the product.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TERMINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(check: Any, timeout_s: float = 600.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise SystemExit("timed out waiting for the run")


def spec(client: httpx.Client, name: str, **changes: Any) -> dict[str, Any]:
    doc = client.get("/openapi.json").json()
    seed: dict[str, Any] = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"][
        "application/json"
    ]["examples"]["seed"]["value"]
    training = seed["training"] | {"epochs": 6, "target": {"metric": "val_accuracy", "value": 0.99}}
    return (
        seed
        | {
            "name": name,
            "dataset": {"name": "synthetic", "samples": 8192},
            "training": training,
            "tags": ["screenshots"],
        }
        | changes
    )


def shoot(page: Page, url: str, ready: str, name: str) -> None:
    page.goto(url)
    page.locator(ready).first.wait_for(timeout=120_000)
    page.wait_for_timeout(1500)  # let the charts settle
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
    print(f"wrote docs/screenshots/{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
        env["TAAS_STEP_METRIC_INTERVAL_S"] = "0.1"
        data = Path(tmp) / "data"
        with (Path(tmp) / "up.log").open("wb") as log:
            up = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "up",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data),
                ],
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env | {"PYTHONPATH": str(ROOT)},
            )
        try:
            wait(lambda: (data / "admin_token").exists() and _ready(url), 120)
            token = (data / "admin_token").read_text().strip()
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
            ids = []
            for name, lr in (("sgd-lr-0.002", 0.002), ("sgd-lr-0.01", 0.01)):
                body = spec(client, name, optimizer={"name": "sgd", "lr": lr, "momentum": 0.9})
                ids.append(client.post("/v1/jobs", json=body).json()["id"])
            sweep = client.post(
                "/v1/sweeps",
                json={
                    "name": "lr-sweep",
                    "base": spec(client, "lr-sweep"),
                    "space": {"optimizer.lr": [0.002, 0.01, 0.05]},
                    "objective": {"maximize": "val_accuracy"},
                    "budget": {"max_trials": 3, "max_parallel": 1},
                },
            ).json()
            for job_id in ids:
                wait(lambda j=job_id: client.get(f"/v1/jobs/{j}").json()["status"] in TERMINAL)
            wait(lambda: client.get(f"/v1/sweeps/{sweep['id']}").json()["status"] in TERMINAL)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(url)
                page.locator("#key").fill(token)
                page.locator("#sign-in button").click()
                page.locator("#jobs-body").wait_for()
                shoot(page, f"{url}/#/jobs/{ids[1]}", "#curves canvas", "job")
                shoot(
                    page,
                    f"{url}/#/compare?ids={ids[0]},{ids[1]}",
                    "#compare-chart canvas",
                    "compare",
                )
                shoot(page, f"{url}/#/sweeps/{sweep['id']}", "#leaderboard", "sweep")
                shoot(page, f"{url}/#/jobs", "#jobs-body tr", "jobs")
                browser.close()
        finally:
            up.terminate()
            up.wait(30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
