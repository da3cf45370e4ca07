"""The README is executed: every ```sh and ```json block runs against a live `taas up` in a
fresh folder outside the repository (the clone's `examples/` and `.venv` beside it, as a
user's clone has them), with ../shared/datasets/mnist as the dataset mirror.

A block runs unless the line before its fence says `<!-- readme: skip (why) -->`. In a sh
block, a comment `# -> {...}` shows the output of the command before it: the test checks
its shape (every key shown is there; strings shown as `prefix...` start with the prefix;
other values are equal; `...` stands for what is not shown). A JSON block that is a job
spec is submitted (a `ds_...` dataset becomes `synthetic`); a `{"layers": ...}` block goes
to POST /v1/models/summary for 1x28x28 images and 10 classes.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MNIST, ROOT, free_port, wait_for_http

pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/datasets/mnist")
SKIP = re.compile(r"<!-- readme: skip \((.+)\) -->")
SHOWN = "# -> "
STEP_MARK = "@@readme-step@@"
BLOCK_TIMEOUT_S = 600
README_URL = "http://127.0.0.1:8000"


@dataclass
class Block:
    lang: str
    line: int
    code: str
    skip: str | None = None
    steps: list[tuple[str, str | None]] = field(default_factory=list)


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.fullmatch(r"```(sh|json)", lines[i])
        if fence is None:
            i += 1
            continue
        end = lines.index("```", i + 1)
        skip = SKIP.fullmatch(lines[i - 1]) if i else None
        code = "\n".join(lines[i + 1 : end])
        found.append(Block(fence.group(1), i + 1, code, skip.group(1) if skip else None))
        i = end + 1
    return found


def steps(code: str) -> list[tuple[str, str | None]]:
    """The block cut after each shown output: (commands, the output shown or None)."""
    cut: list[tuple[str, str | None]] = []
    commands: list[str] = []
    shown: list[str] = []
    for line in [*code.splitlines(), ""]:
        if line.startswith(SHOWN):
            shown.append(line.removeprefix(SHOWN))
        elif shown and line.startswith("#   "):
            shown.append(line.removeprefix("#"))
        else:
            if shown:
                cut.append(("\n".join(commands), " ".join(shown)))
                commands, shown = [], []
            commands.append(line)
    if any(c.strip() and not c.lstrip().startswith("#") for c in commands):
        cut.append(("\n".join(commands), None))
    return cut


def parse_shown(shown: str) -> Any:
    """`201 {"id": "ds_...", ...}` as JSON, with the elisions dropped."""
    body = re.sub(r"^\d{3} ", "", shown.strip())
    body = re.sub(r",\s*\.\.\.(?=\s*[}\]])", "", body)
    return json.loads(body)


def matches(shown: Any, actual: Any, where: str = "output") -> list[str]:
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r:.80}"]
        problems = [f"{where}.{k}: missing" for k in shown if k not in actual]
        for key in shown:
            if key in actual:
                problems += matches(shown[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(shown, list):
        if not isinstance(actual, list) or len(actual) < len(shown):
            return [f"{where}: expected a list like {shown!r:.80}, got {actual!r:.80}"]
        return [p for i, s in enumerate(shown) for p in matches(s, actual[i], f"{where}[{i}]")]
    if isinstance(shown, str) and shown.endswith("..."):
        ok = isinstance(actual, str) and actual.startswith(shown.removesuffix("..."))
        return [] if ok else [f"{where}: expected {shown!r}, got {actual!r}"]
    return [] if shown == actual else [f"{where}: expected {shown!r}, got {actual!r}"]


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A user's folder (not the repository) with `taas up` running in it."""
    home = tmp_path_factory.mktemp("readme-user")
    folder = home / "work"
    folder.mkdir()
    shutil.copytree(ROOT / "examples", folder / "examples")
    (folder / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    env |= {
        "XDG_CONFIG_HOME": str(home / "config"),
        "TAAS_DATASET_MIRROR": str(MNIST),
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    }
    port = free_port()
    with (home / "up.log").open("wb") as log:
        up = subprocess.Popen(
            ["taas", "up", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/readyz", up)
        yield folder, env, url
    finally:
        up.terminate()
        up.wait(60)


README_BLOCKS = blocks((ROOT / "README.md").read_text())


def test_the_readme_has_runnable_blocks_and_every_skip_says_why() -> None:
    runnable = [b for b in README_BLOCKS if b.skip is None]
    assert len(runnable) >= 4
    assert all(b.skip for b in README_BLOCKS if b.skip is not None)


@pytest.mark.parametrize(
    "block",
    [b for b in README_BLOCKS if b.skip is None],
    ids=lambda b: f"{b.lang}-line-{b.line}",
)
def test_readme_block_runs_as_shown(block: Block, user: tuple[Path, dict[str, str], str]) -> None:
    folder, env, url = user
    code = block.code.replace(README_URL, url)
    if block.lang == "json":
        run_json(code, folder, env, url)
        return
    cut = steps(code)
    script = "set -eo pipefail\n" + f"\necho {STEP_MARK}\n".join(c for c, _ in cut)
    run = subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert run.returncode == 0, (
        f"README line {block.line}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    )
    outputs = run.stdout.split(STEP_MARK + "\n")
    assert len(outputs) == len(cut)
    for (commands, shown), output in zip(cut, outputs, strict=True):
        if shown is None:
            continue
        actual = json.loads(output)
        problems = matches(parse_shown(shown), actual)
        assert problems == [], f"README line {block.line}, after:\n{commands}\n{problems}"


def run_json(code: str, folder: Path, env: dict[str, str], url: str) -> None:
    spec = json.loads(code)
    token = subprocess.run(
        ["taas", "token"], cwd=folder, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    if "optimizer" in spec:
        if str(spec.get("dataset", "")).endswith("..."):
            spec["dataset"] = "synthetic"
        response = httpx.post(f"{url}/v1/jobs", json=spec, headers=auth, timeout=60)
        assert response.status_code == 201, response.text
        return
    summary = {"model": spec, "input_shape": [1, 28, 28], "classes": 10}
    response = httpx.post(f"{url}/v1/models/summary", json=summary, headers=auth, timeout=60)
    assert response.status_code == 200, response.text
