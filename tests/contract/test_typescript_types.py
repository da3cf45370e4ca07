"""openapi-typescript's types of the served document accept what the docs tell users to send.

The seed job and every JSON body in the README are written as typed TypeScript literals
and compiled with `tsc --strict`; a typed read of a job's result compiles without a cast.
Needs Node (tests/contract/ts pins openapi-typescript and typescript with a lock file);
under CI=true it installs them with `npm ci` and never skips.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import IN_CI, ROOT

TS = Path(__file__).with_name("ts")
BIN = TS / "node_modules" / ".bin"


def node_tools() -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        if IN_CI:
            pytest.fail("CI=true needs node and npm for the TypeScript contract check")
        pytest.skip("node/npm not installed")
    if not (BIN / "tsc").exists() or not (BIN / "openapi-typescript").exists():
        run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS)


def run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


def readme_bodies() -> list[tuple[str, Any]]:
    """Every JSON example in the README, with the schema it is a body (or part) of."""
    bodies: list[tuple[str, Any]] = []
    for block in re.findall(r"```json\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        text = block.strip()
        if text.startswith('"'):
            text = "{" + text + "}"  # a fragment such as "distributed": {...}
        value = json.loads(text)
        if "error" in value:
            bodies.append(("ErrorOut", value))
        elif "optimizer" in value:
            bodies.append(("JobSpec", value))
        elif "layers" in value:
            bodies.append(("ModelSpec", value))
        elif "distributed" in value:
            bodies.append(("Distributed", value["distributed"]))
        else:
            pytest.fail(f"a README JSON example this test does not know: {text[:80]}")
    return bodies


def check_source(seed: Any) -> str:
    lines = [
        'import type { components, paths } from "./api";',
        "type Schemas = components['schemas'];",
        "type Json = 'application/json';",
        "type SubmitBody = paths['/v1/jobs']['post']['requestBody']['content'][Json];",
        "type Job = paths['/v1/jobs/{job_id}']['get']['responses'][200]['content'][Json];",
        f"export const seed: SubmitBody = {json.dumps(seed)};",
        "export const sweep: Schemas['SweepSpec'] = {",
        f"  name: 'lr', base: {json.dumps(seed)},",
        "  space: { 'optimizer.lr': [0.003, 0.01] },",
        "  strategy: { name: 'halving', eta: 3, min_epochs: 1 },",
        "  objective: { maximize: 'val_accuracy' },",
        "  budget: { max_trials: 8, max_parallel: 2 },",
        "};",
        f"export const advise: Schemas['AdviseRequest'] = {{ base: {json.dumps(seed)} }};",
    ]
    for i, (schema, body) in enumerate(readme_bodies()):
        lines.append(f"export const readme{i}: Schemas['{schema}'] = {json.dumps(body)};")
    lines += [
        # Typed reads, no casts: the status is a union of literals, the result typed.
        "export function accuracy(job: Job): number | undefined {",
        "  return job.result?.final['val_accuracy'];",
        "}",
        "export function finished(job: Job): boolean {",
        "  const ended: Schemas['JobStatus'][] = ['succeeded', 'failed', 'cancelled'];",
        "  return ended.includes(job.status);",
        "}",
        "export function firstActivation(job: Job): Schemas['Activation'] | undefined {",
        "  const layer = job.spec.model.layers?.[0];",
        "  return layer && layer.type === 'linear' ? layer.activation : undefined;",
        "}",
        "export function epochs(job: Job): number | undefined { return job.result?.epochs; }",
    ]
    return "\n".join(lines) + "\n"


def test_typescript_types_accept_the_documented_bodies(client: TestClient, tmp_path: Path) -> None:
    node_tools()
    (tmp_path / "openapi.json").write_text(json.dumps(client.get("/openapi.json").json()))
    run(
        [
            str(BIN / "openapi-typescript"),
            "openapi.json",
            "-o",
            "api.ts",
            "--default-non-nullable=false",
        ],
        cwd=tmp_path,
    )
    seed = json.loads((ROOT / "examples" / "seed-job.json").read_text())
    (tmp_path / "check.ts").write_text(check_source(seed))
    strict = ["--strict", "--noEmit", "--target", "es2020", "--module", "esnext"]
    run([str(BIN / "tsc"), *strict, "--moduleResolution", "bundler", "check.ts"], cwd=tmp_path)


def test_typescript_check_can_fail(client: TestClient, tmp_path: Path) -> None:
    """The check is not vacuous: a typo in a body is a compile error."""
    node_tools()
    (tmp_path / "openapi.json").write_text(json.dumps(client.get("/openapi.json").json()))
    run([str(BIN / "openapi-typescript"), "openapi.json", "-o", "api.ts"], cwd=tmp_path)
    (tmp_path / "check.ts").write_text(
        'import type { components } from "./api";\n'
        "export const bad: components['schemas']['Sgd'] = "
        "{ name: 'sgd', lr: 0.1, momentun: 0.9 };\n"
    )
    done = subprocess.run(
        [str(BIN / "tsc"), "--strict", "--noEmit", "check.ts"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "momentun" in done.stdout
