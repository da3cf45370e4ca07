"""A live `taas up` and Debian's Chromium driven by Playwright, for the browser tests.

Playwright's own browser downloads are not reachable here, so the tests drive the system
Chromium by path. Every request a page makes is routed through `Recorder`, which lets
through only what goes to 127.0.0.1 and remembers everything else: a page is offline when
that list stays empty.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.keys.service import admin_token_path
from tests.conftest import IN_CI, ROOT, free_port, wait_for_http

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not IN_CI and not CHROMIUM.exists():
    pytest.skip(
        "needs Chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True
    )
if not IN_CI:
    pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e .[dev])")

from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright  # noqa: E402


@dataclass
class Stack:
    url: str
    admin: str
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, tenant: str | None = None) -> httpx.Client:
        token = self.keys[tenant] if tenant else self.admin
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("ui") / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    # Step metrics every 50 ms instead of every second: short jobs still draw real curves.
    env |= {"PYTHONPATH": str(ROOT), "TAAS_STEP_METRIC_INTERVAL_S": "0.05"}
    log_path = data.parent / "up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up", "--port", str(port), "--data-dir", str(data)],
            cwd=data.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/readyz", process, timeout_s=120)
            stack = Stack(url, admin_token_path(data).read_text().strip())
            with stack.client() as admin:
                for tenant in ("alice", "bob"):
                    created = admin.post("/v1/keys", json={"tenant": tenant, "name": "ui tests"})
                    assert created.status_code == 201, created.text
                    stack.keys[tenant] = created.json()["key"]
            yield stack
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists() or not IN_CI, "CI needs /usr/bin/chromium (.ci/run installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Recorder:
    """Lets requests to 127.0.0.1 through; records (and aborts) every other one."""

    def __init__(self) -> None:
        self.local: list[str] = []
        self.elsewhere: list[str] = []

    def __call__(self, route: Route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            self.local.append(url)
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()


@dataclass
class Tab:
    page: Page
    requests: Recorder
    errors: list[str]
    dialogs: list[str]


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900})
    requests = Recorder()
    context.route("**/*", requests)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Script errors and CSP refusals; not the browser's note of each 4xx answer, which
    # some tests provoke on purpose (a wrong key, another tenant's job).
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield Tab(page, requests, errors, dialogs)
    context.close()
