"""Chaos: randomized faults against a fleet of real workers on the full stack (Postgres +
Redis), then what they cost: recovery time after a worker is killed, work redone per
failure, and jobs lost or run twice.

Faults, drawn with a fixed seed, each aimed at a worker that is training a job: kill -9
the worker and its trainer, kill -9 only the trainer, SIGTERM the worker (a graceful stop),
pause it with SIGSTOP past its lease and let it continue (a zombie), or ring the job's
doorbell twice more. Killed and stopped workers are replaced, so the fleet stays whole.
Every figure is read from the stored events afterwards; the lease TTL and the reaper's
period are short here (settings), so the run takes a few minutes.
"""

import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.broker import Dispatcher
from app.config import Settings
from app.main import create_app
from app.migrate import upgrade
from benchmarks.dispatch import REDIS_URL, percentile, postgres_database
from tests.client import events_of, mlp_job
from tests.conftest import settings_env
from tests.processes import signal_tree, trainers

FAULTS = int(os.environ.get("TAAS_CHAOS_FAULTS", "50"))
SEED = 8
WORKERS = 3
LEASE_TTL_S = 3.0
HEARTBEAT_S = 0.5  # also the reaper's and the reconciler's period
RECONCILE_AFTER_S = 3.0
FAULT_GAP_S = (0.5, 1.5)
FAULT_KINDS = {  # kind: weight
    "kill_worker": 3,
    "kill_trainer": 2,
    "sigterm_worker": 2,
    "pause_worker": 2,
    "duplicate_doorbell": 1,
}
# Faults that take the job from its trainer: each is followed by a resume.
INTERRUPTING = ("kill_worker", "kill_trainer", "sigterm_worker", "pause_worker")
EPOCHS = 20
SAMPLES = 4096
BATCH = 32
STEPS_PER_EPOCH = -(-int(SAMPLES * 0.8) // BATCH)
DRAIN_TIMEOUT_S = 600.0
JOB = {**mlp_job(EPOCHS, SAMPLES, BATCH, hidden=64), "name": "chaos", "tags": ["chaos"]}
TERMINAL = ("succeeded", "failed", "cancelled")


class Fleet:
    """Worker processes; one killed or stopped is replaced by a fresh one at once."""

    def __init__(self, settings: Settings) -> None:
        self.env = {**settings_env(settings), "OMP_NUM_THREADS": "1"}
        self.log = settings.data_dir / "workers.log"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.leaving: list[subprocess.Popen[bytes]] = []  # stopping gracefully
        self.paused: list[tuple[float, int]] = []  # (when to continue, pid)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "worker", "--loglevel=WARNING"],
                    cwd=Path(__file__).resolve().parents[1],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def replace(self, process: subprocess.Popen[bytes]) -> None:
        self.processes.remove(process)
        self.leaving.append(process)
        self.start()

    def pause(self, pid: int, for_s: float) -> None:
        signal_tree(pid, signal.SIGSTOP)
        self.paused.append((time.monotonic() + for_s, pid))

    def continue_paused(self, everyone: bool = False) -> None:
        due = [(at, pid) for at, pid in self.paused if everyone or at <= time.monotonic()]
        for entry in due:
            signal_tree(entry[1], signal.SIGCONT)
            self.paused.remove(entry)

    def by_pid(self, pid: int) -> subprocess.Popen[bytes] | None:
        paused = {p for _, p in self.paused}
        return next(
            (p for p in self.processes if p.pid == pid and p.poll() is None and pid not in paused),
            None,
        )

    def stop(self) -> None:
        self.continue_paused(everyone=True)
        for process in self.processes:
            process.terminate()
        for process in self.processes + self.leaving:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                signal_tree(process.pid, signal.SIGKILL)
                process.wait()


def jobs_with(client: TestClient, status: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/v1/jobs?status={status}&limit=200").json()["items"]
    return items


def inject(
    kind: str,
    job: dict[str, Any],
    process: subprocess.Popen[bytes],
    fleet: Fleet,
    dispatcher: Dispatcher,
) -> bool:
    """Inject the fault; whether it landed."""
    if kind == "kill_worker":
        signal_tree(process.pid, signal.SIGKILL)
        process.wait()
        fleet.replace(process)
    elif kind == "kill_trainer":
        found = trainers(process.pid)
        for pid in found:
            os.kill(pid, signal.SIGKILL)
        return bool(found)  # none yet: the job is still starting, and nothing happened
    elif kind == "sigterm_worker":
        process.terminate()  # it checkpoints, hands the job back and exits on its own
        fleet.replace(process)
    elif kind == "pause_worker":
        fleet.pause(process.pid, LEASE_TTL_S + 2 * HEARTBEAT_S + 1.0)
    else:
        dispatcher.send(job["id"])
        dispatcher.send(job["id"])
    return True


def when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["time"]).timestamp()


def redone(events: list[dict[str, Any]]) -> list[int]:
    """Steps trained again after each failure: how far the job had got (by its last
    metric; they come every 0.2 s, so a close lower bound) minus where the next attempt
    started (its checkpoint's step, or 0 without one)."""
    found = []
    reached = 0
    for index, event in enumerate(events):
        if event["type"] == "metric":
            reached = max(reached, event["data"]["step"])
        restarted = event["type"] == "status" and event["data"]["status"] == "running"
        if not restarted or event["data"]["attempt"] == 1:
            continue
        started: int | None = None
        for later in events[index + 1 :]:
            if later["type"] == "status":
                break
            message = later["data"].get("message", "") if later["type"] == "log" else ""
            if message.startswith("training on"):
                started = 0
            if "resumed after epoch" in message:
                started = int(message.split("(step ")[1].rstrip(")"))
                break
        # An attempt that was itself interrupted before its trainer began redid nothing;
        # the attempt after it is the one that shows what was lost.
        if started is not None:
            found.append(max(0, reached - started))
    return found


def analyse(client: TestClient, job_ids: list[str], faults: list[dict[str, Any]]) -> dict[str, Any]:
    logs = {job_id: events_of(client, job_id) for job_id in job_ids}
    jobs = {job_id: client.get(f"/v1/jobs/{job_id}").json() for job_id in job_ids}
    lost = [j for j, job in jobs.items() if job["status"] != "succeeded"]
    duplicated = []
    for job_id, events in logs.items():
        statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
        epochs = [
            e["data"]["epoch"]
            for e in events
            if e["type"] == "metric" and e["data"]["scope"] == "epoch"
        ]
        ends = [s for s in statuses if s in TERMINAL]
        if len(ends) > 1 or epochs != sorted(set(epochs)) or len(epochs) > EPOCHS:
            duplicated.append(job_id)
    recovery: dict[str, list[float]] = {kind: [] for kind in INTERRUPTING}
    for fault in faults:
        if fault["kind"] not in INTERRUPTING:
            continue
        claims = [
            e
            for e in logs[fault["job"]]
            if e["type"] == "status"
            and e["data"]["status"] == "running"
            and e["data"]["attempt"] > fault["attempt"]
        ]
        if claims:
            recovery[fault["kind"]].append(when(claims[0]) - fault["at"])
    redone_steps = [step for events in logs.values() for step in redone(events)]
    kills = recovery["kill_worker"]
    return {
        "faults": len(faults),
        "fault_kinds": {k: sum(f["kind"] == k for f in faults) for k in FAULT_KINDS},
        "jobs": len(job_ids),
        "jobs_lost": len(lost),
        "jobs_duplicated": len(duplicated),
        "resumes": sum(job["attempt"] - 1 for job in jobs.values()),
        "lease_ttl_s": LEASE_TTL_S,
        "reaper_period_s": HEARTBEAT_S,
        "recovery_target_s": LEASE_TTL_S + HEARTBEAT_S + 5.0,
        "worker_kill_recovery_p50_s": percentile(kills, 0.5) if kills else None,
        "worker_kill_recovery_p95_s": percentile(kills, 0.95) if kills else None,
        "worker_kill_recovery_max_s": max(kills) if kills else None,
        "recovery_p50_s_by_fault": {
            k: statistics.median(v) if v else None for k, v in recovery.items()
        },
        "checkpoint_interval_epochs": 1,
        "epochs_redone_per_failure_mean": (
            statistics.mean(redone_steps) / STEPS_PER_EPOCH if redone_steps else None
        ),
        "epochs_redone_per_failure_max": (
            max(redone_steps) / STEPS_PER_EPOCH if redone_steps else None
        ),
        "steps_per_epoch": STEPS_PER_EPOCH,
        "steps_redone": redone_steps,
    }


def chaos(settings: Settings) -> dict[str, Any]:
    # A SIGTERM (a timeout) unwinds through `finally`, so no worker outlives the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rng = random.Random(SEED)
    fleet = Fleet(settings)
    dispatcher = Dispatcher(settings)
    job_ids: list[str] = []
    faults: list[dict[str, Any]] = []
    with TestClient(create_app(settings)) as client:
        try:
            for _ in range(WORKERS):
                fleet.start()
            while len(faults) < FAULTS:
                waiting = len(jobs_with(client, "queued")) + len(jobs_with(client, "running"))
                # One worker stays idle, as in a fleet with spare capacity: recovery is then
                # the mechanism's (lease, reaper, doorbell, resume), not a wait in the queue.
                for _ in range(WORKERS - 1 - waiting):
                    job_ids.append(client.post("/v1/jobs", json=JOB).json()["id"])
                time.sleep(rng.uniform(*FAULT_GAP_S))
                fleet.continue_paused()
                busy = [
                    (job, process)
                    for job in jobs_with(client, "running")
                    if job["worker"]
                    and (process := fleet.by_pid(int(job["worker"].rsplit(":", 1)[1])))
                ]
                if not busy:
                    continue
                job, process = rng.choice(busy)
                kind = rng.choices(list(FAULT_KINDS), weights=list(FAULT_KINDS.values()))[0]
                fault = {"kind": kind, "job": job["id"], "attempt": job["attempt"]}
                fault["at"] = time.time()
                if inject(kind, job, process, fleet, dispatcher):
                    faults.append(fault)
                if len(faults) % 10 == 0:
                    print(f"chaos: {len(faults)} faults injected", file=sys.stderr, flush=True)
            # The last paused worker stays paused its full time, as every other did.
            time.sleep(max((at - time.monotonic() for at, _ in fleet.paused), default=0.0))
            fleet.continue_paused(everyone=True)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while (jobs_with(client, "queued") or jobs_with(client, "running")) and (
                time.monotonic() < deadline
            ):
                time.sleep(1.0)
        finally:
            fleet.stop()
        return analyse(client, job_ids, faults)


def run() -> dict[str, Any]:
    with postgres_database("taas_chaos") as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=url,
            redis_url=REDIS_URL,
            task_queue=f"chaos.{uuid.uuid4().hex[:8]}",
            lease_ttl_s=LEASE_TTL_S,
            heartbeat_s=HEARTBEAT_S,
            reconcile_after_s=RECONCILE_AFTER_S,
            step_metric_interval_s=0.2,
            # Faults land on random jobs, so one job may be hit more often than the
            # default allows; here every job should survive them all.
            max_restarts=FAULTS,
        )
        upgrade(settings)
        return chaos(settings)
