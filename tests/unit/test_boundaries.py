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


# --- the import graph of app/ and worker/, from their sources -------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of app/ and worker/ -> the modules of app/ and worker/ it imports, at any
    depth of its code (a lazy import inside a function counts: it is still a dependency)."""
    paths = sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "worker").rglob("*.py")])
    modules = {module_name(path): path for path in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets.add(base)
                # `from app.jobs import service` imports the module app.jobs.service.
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_import_graph_is_read_from_the_sources() -> None:
    graph = import_graph()

    # Guards the checks below against a graph that reads nothing.
    assert "app.jobs.transitions" in graph["worker.supervisor"]
    assert "app.orm" in reachable(graph, "app.jobs.service")


def test_no_import_cycle_among_app_and_worker_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_repositories_never_import_services() -> None:
    graph = import_graph()
    offenders = {
        module: sorted(t for t in targets if t.rpartition(".")[2] == "service")
        for module, targets in graph.items()
        if module.endswith(".repository")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_routers_never_import_the_orm() -> None:
    graph = import_graph()
    offenders = {
        module: sorted(t for t in targets if t == "app.orm" or t.startswith("app.orm."))
        for module, targets in graph.items()
        if module.endswith(".router")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_trainer_never_reaches_the_orm_or_the_database() -> None:
    graph = import_graph()
    trainer = [m for m in graph if m.startswith("worker.trainer")]
    assert trainer, "no trainer modules found"
    offenders = {
        module: sorted(
            t
            for t in reachable(graph, module)
            if t.split(".")[:2] in (["app", "orm"], ["app", "db"])
        )
        for module in trainer
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_trainer_process_loads_neither_the_orm_nor_the_database(tmp_path: Path) -> None:
    loaded = loaded_after("import worker.trainer.run\n", tmp_path, "app")
    assert "app.spec" in loaded
    assert [m for m in loaded if m.startswith(("app.orm", "app.db"))] == []
