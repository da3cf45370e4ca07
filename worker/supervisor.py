"""Supervise one job's trainer process: claim, lease, cancel, store events, record the end.

The trainer is forked from a fork server that has torch imported, and becomes its own
session and process group (worker/trainer/entry.py), so a crash, an OOM kill or a CUDA
fault stays there, its memory is returned when it exits, and cancelling kills exactly that
job's processes. This process never imports torch.
"""

import contextlib
import functools
import json
import logging
import multiprocessing
import multiprocessing.context
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.broker import Dispatcher
from app.config import Settings
from app.errors import CheckpointNotFound
from app.events.notify import Notifier
from app.events.schemas import NewEvent
from app.events.service import FenceLost
from app.jobs import service as jobs
from app.orm import Dataset
from app.spec import JobSpec
from app.storage import Storage
from worker.trainer import entry

logger = logging.getLogger(__name__)

# Lease renewal and the cancel check share one tick, so a cancel takes effect within it.
TICK_S = 0.5
# Trainer events are written in batches at most this often (and at the end).
FLUSH_S = 0.25
# After SIGTERM, a trainer has this long to exit before SIGKILL.
TERMINATE_GRACE_S = 3.0
MAX_REASON = 500
# Why a worker stops a job that is not finished, each a reason the job's events show.
CANCELLED = "cancelled"
WORKER_STOPPING = "worker_stopping"
TIMEOUT = "timeout"  # past TAAS_MAX_RUNTIME_S: checkpointed, then failed
# A trainer that dies without saying why (killed, crashed) failed for the machine's sake.
TRAINER_LOST = "trainer_lost"
# Faults that are the job's own and fail it at once, named by their kind.
NAMED_JOB_FAULTS = (entry.DIVERGED, entry.OUT_OF_MEMORY, entry.SHAPE_ERROR)


class InputGone(Exception):
    """A dataset or checkpoint the job names no longer exists: the job's own failure."""


@dataclass
class Outcome:
    result: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    error: str | None = None
    # Whose fault the error is (entry.py's kinds); None for the job's own failures found
    # before training (a deleted dataset).
    fault: str | None = None
    cancelled: bool = False
    lost: bool = False
    # Why the trainer was asked to checkpoint and stop, once it was.
    stopped_for: str | None = None
    pending: list[NewEvent] = field(default_factory=list)


@dataclass
class Supervisor:
    settings: Settings
    sessions: sessionmaker[Session]
    notifier: Notifier
    storage: Storage
    worker_id: str
    dispatcher: Dispatcher
    current_job: str | None = None
    # Set when the worker is shutting down: the running job checkpoints and goes back.
    stop_reason: str | None = None

    def request_stop(self, reason: str = WORKER_STOPPING) -> None:
        """Ask the running job (and any later one) to checkpoint and go back to the queue."""
        self.stop_reason = reason

    def run(self, job_id: str) -> None:
        """Claim the job and see it to its end; a job someone else holds is left alone."""
        with self.sessions() as session:
            claim = jobs.claim(
                session=session,
                notifier=self.notifier,
                job_id=job_id,
                worker=self.worker_id,
                lease_ttl_s=self.settings.lease_ttl_s,
                max_running=self.settings.max_running_jobs,
            )
        if claim is None:
            logger.info("job %s is not queued (claimed elsewhere, cancelled or gone)", job_id)
            return
        if self.stop_reason is not None:  # a doorbell answered while shutting down
            self.record_end(claim, Outcome(stopped_for=self.stop_reason))
            return
        self.current_job = job_id
        try:
            outcome = self.supervise(claim)
            self.record_end(claim, outcome)
        finally:
            self.current_job = None

    def dataset_path(self, dataset_id: str | None, tenant: str) -> str | None:
        if dataset_id is None:
            return None
        with self.sessions() as session:
            dataset = session.get(Dataset, dataset_id)
        # Re-checked here, not only at submit: a job reads only its own tenant's data.
        if dataset is None or dataset.tenant != tenant:
            raise InputGone(f"dataset {dataset_id} was deleted")
        return str(self.storage.path(dataset.path))

    def payload(self, claim: jobs.Claim) -> dict[str, Any]:
        try:
            with self.sessions() as session:
                start = jobs.start_point(session=session, claim=claim)
                reported = jobs.reported_epoch(session=session, claim=claim)
                warm_start = jobs.get(
                    session=session, job_id=claim.job_id, tenant=claim.tenant
                ).warm_start
        except CheckpointNotFound as error:
            raise InputGone(f"the job's warm start is gone: {error.message}") from error
        return {
            "artifacts_dir": str(self.storage.root),
            "checkpoint_dir": f"checkpoints/{claim.job_id}",
            "start": start,
            "reported_epoch": reported,
            "warm_start": warm_start,
            "job_id": claim.job_id,
            "attempt": claim.attempt,
            "spec": claim.spec,
            "flops_per_sample": claim.flops_per_sample,
            "dataset_path": self.dataset_path(claim.dataset_id, claim.tenant),
            "val_dataset_path": self.dataset_path(
                claim.spec["training"].get("val_dataset"), claim.tenant
            ),
            "claimed_at": claim.claimed_at.timestamp(),
            "step_metric_interval_s": self.settings.step_metric_interval_s,
        }

    def supervise(self, claim: jobs.Claim) -> Outcome:
        try:
            payload = self.payload(claim)
        except InputGone as error:
            return Outcome(error=str(error))
        from worker import gang  # it builds on this module

        if gang.nodes(claim.spec) > 1:  # a multi-worker job: its gang forms first
            gang_outcome = Outcome()
            payload["gang"] = gang.lead(self, claim, gang_outcome)
            if payload["gang"] is None:
                return gang_outcome
        events, trainer_end = trainers().Pipe(duplex=False)
        process = trainers().Process(target=entry.child, args=(payload, trainer_end))
        process.start()
        trainer_end.close()  # the trainer holds the only writer: its exit is our EOF
        outcome = Outcome()
        distributed = JobSpec.model_validate(claim.spec).distributed.world_size > 1
        started = last_flush = last_tick = time.monotonic()
        # The claim has just set the lease; each renewal moves this on. Past it another
        # worker may hold the job, so this one stops its trainer without another write.
        lease_until = last_tick + self.settings.lease_ttl_s
        stop_by: float | None = None
        open_pipe = True
        try:
            while open_pipe and not outcome.lost:
                if events.poll(FLUSH_S):
                    try:
                        self.take(events.recv_bytes(), outcome)
                    except EOFError:
                        open_pipe = False
                now = time.monotonic()
                if outcome.pending and (now - last_flush >= FLUSH_S or not open_pipe):
                    self.flush(claim, outcome)
                    last_flush = now
                if now - last_tick >= TICK_S:
                    last_tick = now
                    if self.tick(claim, outcome):
                        lease_until = now + self.settings.lease_ttl_s
                    elif now >= lease_until:
                        logger.warning("the lease of job %s ran out; stopping", claim.job_id)
                        outcome.lost = True
                    wanted = CANCELLED if outcome.cancelled else self.stop_reason
                    if wanted is None and now - started >= self.settings.max_runtime_s:
                        wanted = TIMEOUT
                    if wanted is not None and outcome.stopped_for is None:
                        if distributed:
                            # Ranks would each stop at their own step and wait on each
                            # other's collectives: a DDP job stops by killing its group and
                            # goes on from its newest epoch checkpoint.
                            outcome.stopped_for = wanted
                            break
                        self.ask_to_stop(process, outcome, wanted)
                        stop_by = now + self.settings.stop_grace_s
                if stop_by is not None and now >= stop_by:
                    logger.warning("job %s did not stop within the grace; killing", claim.job_id)
                    break
        finally:
            events.close()
            if not open_pipe:  # the trainer is done writing: let it exit on its own
                process.join(TERMINATE_GRACE_S)
            stop(process)
        code = process.exitcode
        if code not in (0, None) and outcome.error is None and outcome.stopped_for is None:
            outcome.error, outcome.fault = describe_exit(code), TRAINER_LOST
            outcome.pending.append(
                NewEvent(type="log", data={"level": "error", "message": outcome.error})
            )
        return outcome

    def ask_to_stop(self, process: BaseProcess, outcome: Outcome, reason: str) -> None:
        """Ask the trainer to checkpoint where it is and exit; it has stop_grace_s to do so.
        (Cancel, the runtime limit and worker shutdown.)"""
        logger.info("asking job %s to checkpoint and stop: %s", self.current_job, reason)
        outcome.stopped_for = reason
        assert process.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, entry.STOP_SIGNAL)

    def take(self, line: bytes, outcome: Outcome) -> None:
        message = json.loads(line)
        kind, data = message["type"], message["data"]
        when = _utc(message["time"])
        if kind == "error":
            outcome.error, outcome.fault = data["message"], data.get("fault")
            outcome.pending.append(NewEvent(type="log", data={"level": "error", **data}, time=when))
            return
        if kind == "result":
            outcome.result, outcome.timings = data["result"], data["timings"]
        outcome.pending.append(NewEvent(type=kind, data=data, time=when))

    def store(self, claim: jobs.Claim, outcome: Outcome) -> None:
        """Write the pending events under the claim's fence (raises FenceLost, OperationalError)."""
        with self.sessions() as session:
            pruned = jobs.record(
                session=session, notifier=self.notifier, claim=claim, new=outcome.pending
            )
        outcome.pending = []
        # After the commit: a checkpoint's files go only once no row points at them.
        for path in pruned:
            self.storage.delete(path)

    def flush(self, claim: jobs.Claim, outcome: Outcome) -> None:
        try:
            self.store(claim, outcome)
        except FenceLost:
            logger.warning(
                "job %s is held by another worker; its writes here are refused", claim.job_id
            )
            outcome.lost = True
        except OperationalError as error:
            # Kept pending: written once the database answers again.
            logger.warning("could not store events of job %s yet: %s", claim.job_id, error)

    def tick(self, claim: jobs.Claim, outcome: Outcome) -> bool:
        """Renew the lease and read the cancel flag; whether the lease was renewed."""
        try:
            with self.sessions() as session:
                outcome.cancelled = jobs.renew(
                    session=session, claim=claim, lease_ttl_s=self.settings.lease_ttl_s
                )
        except FenceLost:
            logger.warning("lost the claim on job %s; stopping its trainer", claim.job_id)
            outcome.lost = True
        except OperationalError as error:
            logger.warning("could not renew the lease of job %s: %s", claim.job_id, error)
        else:
            return True
        return False

    def record_end(self, claim: jobs.Claim, outcome: Outcome) -> None:
        """Store the rest of the job's events and its end, retrying while the database is
        away for as long as the lease lasts (the writes are fenced, so retries are safe);
        after that the reaper takes the job back."""
        give_up_at = time.monotonic() + self.settings.lease_ttl_s
        while not outcome.lost:
            try:
                if outcome.pending:
                    self.store(claim, outcome)
                self.write_end(claim, outcome)
                return
            except FenceLost:
                logger.warning("job %s was taken over before it could be finished", claim.job_id)
                return
            except OperationalError as error:
                if time.monotonic() >= give_up_at:
                    logger.error("could not record the end of job %s: %s", claim.job_id, error)
                    return
                logger.warning("could not record the end of job %s yet: %s", claim.job_id, error)
                time.sleep(TICK_S)

    def write_end(self, claim: jobs.Claim, outcome: Outcome) -> None:
        """The job's end as the outcome says: finished (succeeded, failed, cancelled) by the
        job itself, or handed back to the queue when the machine failed or is stopping."""
        if outcome.cancelled:
            status, reason = "cancelled", CANCELLED
        elif outcome.error is None and outcome.result is not None:
            status, reason = "succeeded", str(outcome.result.get("stopped", "completed"))
        elif outcome.stopped_for == TIMEOUT:
            # Its checkpoints stay, the stop checkpoint newest: POST /v1/jobs/{id}/resume
            # continues exactly where the limit stopped it.
            status, reason = "failed", TIMEOUT
        elif outcome.error is not None and outcome.fault not in (
            entry.INFRASTRUCTURE,
            TRAINER_LOST,
        ):
            status = "failed"
            reason = outcome.fault if outcome.fault in NAMED_JOB_FAULTS else outcome.error
        else:
            # Stopping on request is no failure; a trainer lost to the machine counts.
            restart = outcome.stopped_for is None
            reason = outcome.stopped_for or (
                outcome.error
                if outcome.fault == entry.INFRASTRUCTURE and outcome.error
                else TRAINER_LOST
            )
            with self.sessions() as session:
                job = jobs.release(
                    session=session,
                    notifier=self.notifier,
                    claim=claim,
                    reason=reason[:MAX_REASON],
                    restart=restart,
                    max_restarts=self.settings.max_restarts,
                )
            if job.status == "queued":
                self.dispatcher.try_send(job.id, job.device)
            return
        with self.sessions() as session:
            jobs.finish(
                session=session,
                notifier=self.notifier,
                claim=claim,
                status=status,
                reason=reason[:MAX_REASON],
                result=outcome.result if status == "succeeded" else None,
                timings=outcome.timings,
            )


@functools.cache
def trainers() -> multiprocessing.context.ForkServerContext:
    """Trainer processes come from a fork server that has imported torch and the engine
    once, so a job starts training in milliseconds; this process never imports torch."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(entry.PRELOAD)
    return context


def warm_up() -> None:
    """Start the fork server (importing torch there) before the first job needs it."""
    process = trainers().Process(target=entry.ready)
    process.start()
    process.join()


def _signal_group(process: BaseProcess, signum: int) -> None:
    assert process.pid is not None
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:  # not yet its own group leader, or already gone
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def stop(process: BaseProcess) -> None:
    """End the trainer's whole process group: politely, then for sure."""
    if process.exitcode is not None:
        return
    _signal_group(process, signal.SIGTERM)
    process.join(TERMINATE_GRACE_S)
    if process.exitcode is None:
        _signal_group(process, signal.SIGKILL)
        process.join()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the trainer was killed by {name}{hint}"
    return f"the trainer exited with code {returncode}"


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
