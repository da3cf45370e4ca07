"""Supervise one job's trainer process: claim, lease, cancel, store events, record the end.

The trainer is forked from a fork server that has torch imported, and becomes its own
session and process group (worker/trainer/entry.py), so a crash, an OOM kill or a CUDA
fault stays there, its memory is returned when it exits, and cancelling kills exactly that
job's processes. This process never imports torch.
"""

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.broker import Dispatcher
from app.config import Settings
from app.events.notify import Notifier
from app.events.schemas import NewEvent
from app.events.service import FenceLost
from app.jobs import attempt, transitions
from app.jobs.attempt import InputGone
from app.jobs.protocol import (
    MACHINE_FAULTS,
    NAMED_JOB_FAULTS,
    STOP_SIGNAL,
    Fault,
    TrainerEvent,
    TrainerFailed,
    TrainerPayload,
    TrainerResult,
)
from app.jobs.status import JobStatus
from app.jobs.transitions import Claim
from app.storage import Storage
from worker import gang, processes
from worker.outcome import Outcome
from worker.processes import TERMINATE_GRACE_S, describe_exit, stop

logger = logging.getLogger(__name__)

# Lease renewal and the cancel check share one tick, so a cancel takes effect within it.
TICK_S = gang.TICK_S
# Trainer events are written in batches at most this often (and at the end).
FLUSH_S = 0.25
MAX_REASON = 500
# Why a worker stops a job that is not finished, each a reason the job's events show.
CANCELLED = transitions.CANCELLED
WORKER_STOPPING = "worker_stopping"
TIMEOUT = "timeout"  # past TAAS_MAX_RUNTIME_S: checkpointed, then failed


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
            claim = transitions.claim(
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

    def payload(self, claim: Claim) -> TrainerPayload:
        """The trainer's payload, prepared by app in one call; InputGone when an input is."""
        with self.sessions() as session:
            return attempt.payload(
                session=session, storage=self.storage, settings=self.settings, claim=claim
            )

    def supervise(self, claim: Claim) -> Outcome:
        try:
            payload = self.payload(claim)
        except InputGone as error:
            return Outcome(error=str(error))
        if claim.spec.distributed.nodes > 1:  # a multi-worker job: its gang forms first
            gang_outcome = Outcome()
            seat = gang.lead(self, claim, gang_outcome)
            if seat is None:
                return gang_outcome
            payload = payload.joining(seat)
        events, process = processes.start(payload)
        outcome = Outcome()
        distributed = claim.spec.distributed.world_size > 1
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
            outcome.error, outcome.fault = describe_exit(code), Fault.TRAINER_LOST
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
            os.kill(process.pid, STOP_SIGNAL)

    def take(self, line: bytes, outcome: Outcome) -> None:
        message = TrainerEvent.model_validate_json(line)
        kind, data = message.type, message.data
        when = datetime.fromtimestamp(message.time, UTC)
        if kind == "error":
            failed = TrainerFailed.model_validate(data)
            outcome.error, outcome.fault = failed.message, failed.fault
            outcome.pending.append(NewEvent(type="log", data={"level": "error", **data}, time=when))
            return
        if kind == "result":
            ended = TrainerResult.model_validate(data)
            outcome.result, outcome.timings = ended.result, ended.timings.model_dump()
        outcome.pending.append(NewEvent(type=kind, data=data, time=when))

    def store(self, claim: Claim, outcome: Outcome) -> None:
        """Write the pending events under the claim's fence (raises FenceLost, OperationalError)."""
        with self.sessions() as session:
            pruned = transitions.record(
                session=session, notifier=self.notifier, claim=claim, new=outcome.pending
            )
        outcome.pending = []
        # After the commit: a checkpoint's files go only once no row points at them.
        for path in pruned:
            self.storage.delete(path)

    def flush(self, claim: Claim, outcome: Outcome) -> None:
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

    def tick(self, claim: Claim, outcome: Outcome) -> bool:
        """Renew the lease and read the cancel flag; whether the lease was renewed."""
        try:
            with self.sessions() as session:
                outcome.cancelled = transitions.renew(
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

    def record_end(self, claim: Claim, outcome: Outcome) -> None:
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

    def write_end(self, claim: Claim, outcome: Outcome) -> None:
        """The job's end as the outcome says: finished (succeeded, failed, cancelled) by the
        job itself, or handed back to the queue when the machine failed or is stopping."""
        if outcome.cancelled:
            status, reason = JobStatus.CANCELLED, CANCELLED
        elif outcome.error is None and outcome.result is not None:
            status, reason = JobStatus.SUCCEEDED, str(outcome.result.get("stopped", "completed"))
        elif outcome.stopped_for == TIMEOUT:
            # Its checkpoints stay, the stop checkpoint newest: POST /v1/jobs/{id}/resume
            # continues exactly where the limit stopped it.
            status, reason = JobStatus.FAILED, TIMEOUT
        elif outcome.error is not None and outcome.fault not in MACHINE_FAULTS:
            status = JobStatus.FAILED
            reason = (
                outcome.fault
                if outcome.fault is not None and outcome.fault in NAMED_JOB_FAULTS
                else outcome.error
            )
        else:
            # Stopping on request is no failure; a trainer lost to the machine counts.
            restart = outcome.stopped_for is None
            reason = outcome.stopped_for or (
                outcome.error
                if outcome.fault == Fault.INFRASTRUCTURE and outcome.error
                else Fault.TRAINER_LOST
            )
            with self.sessions() as session:
                job = transitions.release(
                    session=session,
                    notifier=self.notifier,
                    claim=claim,
                    reason=reason[:MAX_REASON],
                    restart=restart,
                    max_restarts=self.settings.max_restarts,
                )
            if job.status == JobStatus.QUEUED:
                self.dispatcher.try_send(job.id, job.device)
            return
        with self.sessions() as session:
            transitions.finish(
                session=session,
                notifier=self.notifier,
                claim=claim,
                status=status,
                reason=reason[:MAX_REASON],
                result=outcome.result if status == JobStatus.SUCCEEDED else None,
                timings=outcome.timings,
            )
