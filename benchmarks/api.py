"""API throughput: `GET /v1/jobs/{id}` against a bare FastAPI JSON endpoint.

Each is served by one uvicorn process on this machine and loaded by the same client (16
concurrent keep-alive connections for a few seconds); rounds alternate and the figure is
the median ratio of requests/s.
"""

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.keys.service import server_secrets
from app.migrate import upgrade
from benchmarks.service import ROOT, admin_client

ROUNDS = 3
CONNECTIONS = 16
ROUND_S = 4.0
READY_TIMEOUT_S = 30.0
SAMPLE_JOB = {
    "dataset": "synthetic",
    "model": {"preset": "mlp"},
    "optimizer": {"name": "sgd", "lr": 0.01},
    "training": {"epochs": 1, "batch_size": 32},
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            *(["--factory"] if target.endswith("create_app") else []),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/jobs/x", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{target} did not start")


async def load(url: str, headers: dict[str, str]) -> float:
    """Requests/s that CONNECTIONS concurrent clients get from `url` in ROUND_S seconds."""
    done = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:
        deadline = time.perf_counter() + ROUND_S

        async def one_connection() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await client.get(url)
                assert response.status_code == 200
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(CONNECTIONS)))
        return done / (time.perf_counter() - started)


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        upgrade(settings)
        with admin_client(settings) as client:
            job_id = client.post("/v1/jobs", json=SAMPLE_JOB).json()["id"]
        # Ours authenticates every request (the bare endpoint does not): that is part of
        # its cost. The rate limit would only measure itself, so it is out of the way.
        env = {**os.environ, "TAAS_DATA_DIR": tmp, "TAAS_RATE_BURST": str(10**9)}
        auth = {"Authorization": f"Bearer {server_secrets(settings).admin_token}"}
        ports = free_port(), free_port()
        servers = [
            serve("app.main:create_app", ports[0], env),
            serve("benchmarks.bare:app", ports[1], env),
        ]
        try:
            ours, bare = [], []
            for _ in range(ROUNDS):
                ours.append(
                    asyncio.run(load(f"http://127.0.0.1:{ports[0]}/v1/jobs/{job_id}", auth))
                )
                bare.append(
                    asyncio.run(load(f"http://127.0.0.1:{ports[1]}/v1/jobs/{job_id}", auth))
                )
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)
    return {
        "get_job_requests_per_s": statistics.median(ours),
        "bare_requests_per_s": statistics.median(bare),
        "ratio": statistics.median(o / b for o, b in zip(ours, bare, strict=True)),
        "connections": CONNECTIONS,
    }
