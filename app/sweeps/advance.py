"""Advancing a sweep: record how each rung ended, promote or stop trials (ASHA), submit new
jobs while fewer than `max_parallel` are open, and end the sweep when no trial is in play.

It is idempotent: each trial job is submitted with an Idempotency-Key naming the sweep,
the trial and the rung, so an advance that is repeated or cut short by a crash submits
nothing twice. Workers call it when a trial job ends and from their housekeeping, so a
restart of the API or of a worker loses no sweep.
"""

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from app.broker import Dispatcher
from app.config import Settings
from app.errors import AppError, InvalidTransition, TooManyJobs
from app.events.notify import Notifier
from app.jobs import repository as jobs_repository
from app.jobs import service as jobs
from app.jobs.status import OPEN, TERMINAL, JobStatus
from app.orm import Job, Sweep, Trial
from app.orm.base import utcnow
from app.spec import JobSpec
from app.spec.sweeps import Budget, Halving, SweepSpec
from app.sweeps import repository
from app.sweeps.ranking import measure, rank_key
from app.sweeps.trials import job_spec, rungs, sweep_tag

logger = logging.getLogger(__name__)

# Trial states that will not change again.
FINAL = frozenset({"done", "stopped", "failed", "cancelled"})
# An advance holds its turn this long at most; a crashed one's turn passes after it.
ADVANCE_TURN_S = 60.0


def end(session: Session, notifier: Notifier, sweep: Sweep, status: str, reason: str) -> None:
    """Mark the sweep ended, then cancel its open jobs: found by tag after the commit, so
    a job an advance submits concurrently is either seen here or sees the end itself."""
    sweep.status, sweep.reason, sweep.finished_at = status, reason, utcnow()
    for trial in sweep.trials:
        if trial.state not in FINAL and trial.state != "running":
            trial.state, trial.reason = "cancelled", reason
    session.commit()
    _cancel_open_jobs(session, notifier, sweep)


def _cancel_open_jobs(session: Session, notifier: Notifier, sweep: Sweep) -> None:
    for job_id in jobs_repository.open_tagged(session, sweep_tag(sweep.id)):
        try:
            jobs.cancel(session=session, notifier=notifier, job_id=job_id, tenant=sweep.tenant)
        except InvalidTransition:
            session.rollback()  # it ended meanwhile
    for trial in sweep.trials:
        if trial.state == "running":
            trial.state, trial.reason = "cancelled", sweep.reason
    session.commit()


def advance_for_job(
    *, session: Session, dispatcher: Dispatcher, notifier: Notifier, limits: Settings, job_id: str
) -> None:
    """A job ended: advance its sweep, if it is a trial of one."""
    sweep_id = repository.sweep_of_job(session, job_id)
    session.rollback()
    for found in [sweep_id] if sweep_id is not None else []:
        advance(
            session=session, dispatcher=dispatcher, notifier=notifier, limits=limits, sweep_id=found
        )


def advance_running(
    *, session: Session, dispatcher: Dispatcher, notifier: Notifier, limits: Settings
) -> None:
    """Advance every running sweep (the workers' housekeeping: nothing waits on an event
    that a crash lost)."""
    sweep_ids = repository.running(session, limit=100)
    session.rollback()
    for sweep_id in sweep_ids:
        advance(
            session=session,
            dispatcher=dispatcher,
            notifier=notifier,
            limits=limits,
            sweep_id=sweep_id,
        )


def advance(
    *, session: Session, dispatcher: Dispatcher, notifier: Notifier, limits: Settings, sweep_id: str
) -> None:
    """Bring a running sweep up to date with its trials' jobs (idempotent, one at a time)."""
    now = utcnow()
    if not repository.take_turn(session, sweep_id, now, now + timedelta(seconds=ADVANCE_TURN_S)):
        session.rollback()
        return  # ended, or another caller is advancing it now
    session.commit()
    try:
        _advance(session, dispatcher, notifier, limits, sweep_id)
    finally:
        session.rollback()
        repository.end_turn(session, sweep_id)
        session.commit()


def _advance(
    session: Session, dispatcher: Dispatcher, notifier: Notifier, limits: Settings, sweep_id: str
) -> None:
    session.expire_all()
    sweep = repository.get(session, sweep_id)
    assert sweep is not None
    spec = SweepSpec.model_validate(sweep.spec)
    epochs = rungs(spec)
    found = jobs_repository.by_ids(session, (j for t in sweep.trials for j in t.job_ids))
    for trial in sweep.trials:
        if trial.state == "running" and trial.job_id is not None:
            _record_rung(trial, found[trial.job_id], last=trial.rung == len(epochs) - 1)
    budget = spec.budget
    if budget.max_total_s is not None and utcnow() - sweep.created_at > timedelta(
        seconds=budget.max_total_s
    ):
        measured = _any_measured(session, spec, sweep)
        end(
            session,
            notifier,
            sweep,
            JobStatus.SUCCEEDED if measured else JobStatus.FAILED,
            "max_total_s",
        )
        return
    if isinstance(spec.strategy, Halving):
        _decide_rungs(spec, sweep.trials, found, len(epochs))
    session.commit()
    _submit_next(session, dispatcher, notifier, limits, sweep, spec, epochs, budget)
    session.refresh(sweep)
    if sweep.status == JobStatus.RUNNING and all(trial.state in FINAL for trial in sweep.trials):
        measured = _any_measured(session, spec, sweep)
        sweep.status = JobStatus.SUCCEEDED if measured else JobStatus.FAILED
        sweep.reason = "completed" if measured else "no trial finished"
        sweep.finished_at = utcnow()
        session.commit()


def _any_measured(session: Session, spec: SweepSpec, sweep: Sweep) -> bool:
    """Whether any trial has a result to rank (a sweep without one has failed)."""
    found = jobs_repository.by_ids(session, (j for t in sweep.trials for j in t.job_ids))
    return any(measure(spec.objective, [found[j] for j in t.job_ids]) for t in sweep.trials)


def _record_rung(trial: Trial, job: Job, *, last: bool) -> None:
    if job.status in OPEN:
        return
    if job.status == JobStatus.SUCCEEDED:
        reached = (job.result or {}).get("stopped") == "target_reached"
        trial.state = "done" if reached or last else "waiting"
        trial.reason = "target reached" if reached else None
    else:
        trial.state, trial.reason = job.status, f"job {job.id} {job.status}: {job.reason}"[:500]


def _decide_rungs(
    spec: SweepSpec, trials: list[Trial], found: dict[str, Job], rung_count: int
) -> None:
    """ASHA: at each rung, a waiting trial goes on when it ranks in the best 1/eta of the
    trials that finished that rung; once no trial can still finish it, the rest stop."""
    assert isinstance(spec.strategy, Halving)
    eta = spec.strategy.eta
    for rung in range(rung_count - 1):
        finished: list[tuple[tuple[int, float], Trial]] = []
        for trial in trials:
            if (
                len(trial.job_ids) > rung
                and found[trial.job_ids[rung]].status == JobStatus.SUCCEEDED
            ):
                done = [found[j] for j in trial.job_ids[: rung + 1]]
                measured = measure(spec.objective, done)
                assert measured is not None
                finished.append((rank_key(spec.objective, measured), trial))
        finished.sort(key=lambda pair: (pair[0], pair[1].position))
        may_arrive = any(
            t.state == "pending" or (t.state in ("running", "promoted") and t.rung <= rung)
            for t in trials
        )
        quota = len(finished) // eta if may_arrive else max(1, len(finished) // eta)
        for place, (_, trial) in enumerate(finished):
            if trial.state != "waiting" or trial.rung != rung:
                continue
            # The base of an advice is the yardstick: it always runs to its end.
            if place < quota or (spec.include_base and trial.position == 0):
                trial.state, trial.reason = "promoted", f"rank {place + 1} at rung {rung}"
            elif not may_arrive:
                trial.state = "stopped"
                trial.reason = f"rank {place + 1} of {len(finished)} at rung {rung}"


def _submit_next(
    session: Session,
    dispatcher: Dispatcher,
    notifier: Notifier,
    limits: Settings,
    sweep: Sweep,
    spec: SweepSpec,
    epochs: list[int],
    budget: Budget,
) -> None:
    """Start promoted trials (deepest rung first), then pending ones, while there is room."""
    open_now = sum(1 for trial in sweep.trials if trial.state == "running")
    ready = sorted(
        (t for t in sweep.trials if t.state in ("promoted", "pending")),
        key=lambda t: (t.state != "promoted", -t.rung, t.position),
    )
    for trial in ready:
        if open_now >= budget.max_parallel:
            return
        rung = trial.rung + 1 if trial.state == "promoted" else 0
        try:
            job = _submit_trial(
                session, dispatcher, notifier, limits, sweep, spec, trial, epochs[rung]
            )
        except TooManyJobs:
            session.rollback()
            return  # the tenant's queue is full: the next advance tries again
        except AppError as error:  # e.g. its dataset was deleted since the sweep started
            session.rollback()
            trial.state, trial.reason = "failed", error.message[:500]
            session.commit()
            continue
        trial.job_id, trial.job_ids, trial.rung = job.id, [*trial.job_ids, job.id], rung
        trial.state, trial.reason = "running", None
        session.commit()
        open_now += 1
        session.refresh(sweep)
        if sweep.status in TERMINAL:  # cancelled while we submitted: take it back
            _cancel_open_jobs(session, notifier, sweep)
            return


def _submit_trial(
    session: Session,
    dispatcher: Dispatcher,
    notifier: Notifier,
    limits: Settings,
    sweep: Sweep,
    spec: SweepSpec,
    trial: Trial,
    epochs: int,
) -> Job:
    if trial.job_ids:  # a promotion: continue the last rung's job from its checkpoint
        previous = jobs_repository.by_ids(session, [trial.job_ids[-1]])[trial.job_ids[-1]]
        trained = int((previous.result or {}).get("final", {}).get("epoch", 0))
        next_spec = jobs.continuation(session, previous, epochs - trained)
    else:
        next_spec = JobSpec.model_validate(
            job_spec(spec, sweep.id, trial.position, trial.config, epochs)
        )
    return jobs.submit(
        session=session,
        dispatcher=dispatcher,
        notifier=notifier,
        limits=limits,
        tenant=sweep.tenant,
        spec=next_spec,
        # The same trial and rung always make the same job, however often this runs.
        idempotency_key=f"{sweep_tag(sweep.id)}:{trial.position}:{len(trial.job_ids)}",
    )
