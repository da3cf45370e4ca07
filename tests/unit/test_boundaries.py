"""The import rule: `app` never imports torch or `worker`, and the Celery process never loads
torch (only the trainer child does), so the API and the worker's supervisor stay light."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_APP = frozenset({"torch", "worker"})

# Prints the loaded modules that belong to any of the packages named in argv[2:].
LOADED = """
import json, sys
roots = set(sys.argv[2:])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in roots)))
"""


def loaded_after(setup: str, tmp_path: Path, *packages: str) -> list[str]:
    """Run `setup` in a fresh interpreter at the repo root; which of `packages` it loaded."""
    # A clean TAAS_* environment: the checks must not depend on (or reach) outside servers.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    env["TAAS_DATA_DIR"] = str(tmp_path)
    completed = subprocess.run(
        [sys.executable, "-c", setup + LOADED, str(tmp_path), *packages],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    loaded: list[str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return loaded


def forbidden_imports(path: Path) -> list[str]:
    """Every import statement in `path`, at any depth, that names a forbidden package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
            for name in names
            if name.split(".")[0] in FORBIDDEN_IN_APP
        ]
    return found


def test_api_process_starts_without_loading_torch_or_worker(tmp_path: Path) -> None:
    setup = (
        "import sys\n"
        "from pathlib import Path\n"
        "import app.cli\n"
        "from app.config import Settings\n"
        "from app.main import create_app\n"
        "create_app(Settings(data_dir=Path(sys.argv[1])))\n"
    )
    assert loaded_after(setup, tmp_path, "torch", "worker") == []


def test_no_module_in_app_imports_torch_or_worker() -> None:
    sources = sorted((ROOT / "app").rglob("*.py"))
    assert sources, "no sources found under app/"
    offenders = [found for path in sources for found in forbidden_imports(path)]
    assert offenders == []


def test_celery_worker_process_never_loads_torch(tmp_path: Path) -> None:
    setup = (
        "import sys\n"
        "from pathlib import Path\n"
        "import worker.supervisor, worker.tasks, worker.celery_app\n"
        "from app.config import Settings\n"
        "worker.celery_app.create_celery(Settings(data_dir=Path(sys.argv[1])))\n"
    )
    assert loaded_after(setup, tmp_path, "torch") == []
