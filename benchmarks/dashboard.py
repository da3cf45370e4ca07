"""The dashboard at scale, in Chromium: how long a 100,000-step job's page takes to be
interactive, and whether the live view keeps up with 20 metric events/s without its memory
growing.

The API runs alone (no worker) on SQLite; the job's metric events are written straight to
the database, as a trainer's would be. `interactive_s` is navigation to the curves drawn
(`#curves` has its points); the live part appends 20 events/s for LIVE_S seconds and
reads the page's lag (seqs appended but not yet plotted) and its JS heap, after a forced
garbage collection, at the start and at the end.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright
from sqlalchemy import update

from app.config import Settings
from app.db import make_engine, make_session_factory
from app.events import service as events
from app.events.schemas import NewEvent
from app.migrate import upgrade
from app.orm import Job
from app.spec.schemas import SEED_JOB_EXAMPLE

STEPS = 100_000
EPOCHS = 100
LIVE_S = 60.0
LIVE_RATE = 20.0
TOKEN = "bench-admin-token-0123456789"
SECRET = "bench-secret-key-0123456789"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[1]


def history(steps: int) -> list[NewEvent]:
    per_epoch = steps // EPOCHS
    rows = []
    for step in range(1, steps + 1):
        epoch = (step - 1) // per_epoch + 1
        loss = 2.0 / (1 + step / 1000) + 0.05 * ((step * 7919) % 13) / 13
        rows.append(
            NewEvent(
                type="metric",
                data={
                    "scope": "step",
                    "epoch": epoch,
                    "step": step,
                    "train_loss": loss,
                    "lr": 0.01,
                },
            )
        )
        if step % per_epoch == 0:
            rows.append(
                NewEvent(
                    type="metric",
                    data={
                        "scope": "epoch",
                        "epoch": epoch,
                        "step": step,
                        "val_loss": loss,
                        "val_accuracy": 1 - loss / 3,
                        "lr": 0.01,
                    },
                )
            )
    return rows


def run(steps: int = STEPS, live_s: float = LIVE_S) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), admin_token=TOKEN, secret_key=SECRET)
        upgrade(settings)
        port = 8700 + os.getpid() % 200
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")} | {
            "TAAS_DATA_DIR": tmp,
            "TAAS_ADMIN_TOKEN": TOKEN,
            "TAAS_SECRET_KEY": SECRET,
            "PYTHONPATH": str(ROOT),
        }
        api = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        engine = make_engine(settings)
        sessions = make_session_factory(engine)
        try:
            client = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.2)
            job_id = client.post("/v1/jobs", json=SEED_JOB_EXAMPLE | {"name": "long"}).json()["id"]
            with sessions() as session:
                rows = history(steps)
                for start in range(0, len(rows), 10_000):
                    events.append(session, job_id, rows[start : start + 10_000])
                session.execute(update(Job).where(Job.id == job_id).values(status="running"))
                session.commit()
            return measure(url, job_id, sessions, steps, live_s)
        finally:
            api.terminate()
            api.wait(30)
            engine.dispose()


def measure(url: str, job_id: str, sessions: Any, steps: int, live_s: float) -> dict[str, Any]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.locator("#key").fill(TOKEN)
        page.locator("#sign-in button").click()
        page.locator("#jobs-body").wait_for()
        cdp = page.context.new_cdp_session(page)
        began = time.perf_counter()
        page.goto(f"{url}/#/jobs/{job_id}")
        # Polled from here: the page's CSP forbids the string eval wait_for_function uses.
        curves = page.locator("#curves")
        while int(curves.get_attribute("data-points") or 0) == 0:
            time.sleep(0.01)
        page.locator("#curves canvas").first.wait_for()
        interactive_s = time.perf_counter() - began
        plotted = int(page.locator("#curves").get_attribute("data-points") or 0)

        def heap() -> float:
            cdp.send("HeapProfiler.collectGarbage")
            return float(page.evaluate("performance.memory.usedJSHeapSize"))

        heap_start = heap()
        lags = []
        step = steps
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < live_s:
            step += 1
            with sessions() as session:
                (row,) = events.append(
                    session,
                    job_id,
                    [
                        NewEvent(
                            type="metric",
                            data={
                                "scope": "step",
                                "epoch": EPOCHS,
                                "step": step,
                                "train_loss": 0.1,
                                "lr": 0.01,
                            },
                        )
                    ],
                )
                session.commit()
                newest = row.seq
            sent += 1
            if sent % 20 == 0:
                shown = int(page.locator("#curves").get_attribute("data-last-seq") or 0)
                lags.append(newest - shown)
            time.sleep(max(0.0, started + sent / LIVE_RATE - time.perf_counter()))
        time.sleep(2)
        heap_end = heap()
        final = page.locator("#curves")
        result = {
            "steps": steps,
            "interactive_s": interactive_s,
            "points_loaded": plotted,
            "live_events": sent,
            "live_rate_per_s": sent / (time.perf_counter() - started - 2),
            "max_lag_events": max(lags, default=0),
            "gaps": int(final.get_attribute("data-gaps") or 0),
            "heap_start_mb": heap_start / 1e6,
            "heap_end_mb": heap_end / 1e6,
        }
        browser.close()
        return result
