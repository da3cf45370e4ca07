"""The rules of a sweep: create (every trial validated first), advance, cancel, rank.

Trials are ordinary jobs tagged `sweep:<id>`. The sweep's state is its rows: `advance`
reads the trials' jobs, records how each rung ended, promotes or stops trials (halving),
submits new jobs while fewer than `max_parallel` are open, and ends the sweep when no
trial is left in play. It is idempotent: each trial job is submitted with an
Idempotency-Key naming the sweep, the trial and the rung, so an advance that is repeated
or cut short by a crash submits nothing twice. Workers call it when a trial job ends and
from their housekeeping, so a restart of the API or of a worker loses no sweep.
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.broker import Dispatcher
from app.config import Settings
from app.errors import AppError, ErrorDetail, InvalidTransition, NotFound, SpecInvalid, TooManyJobs
from app.events.notify import Notifier
from app.ids import new_id
from app.jobs import service as jobs
from app.orm import Job, Sweep, Trial
from app.orm.base import utcnow
from app.spec import JobSpec
from app.spec.schemas import Target
from app.spec.sweeps import (
    MAX_MIN_EPOCHS,
    Budget,
    Halving,
    Objective,
    SpaceInvalid,
    SweepSpec,
    apply,
    configurations,
    known_path,
    shown,
)
from app.sweeps import repository
from app.sweeps.schemas import AdviseRequest, Best, PathEffect, SweepOut, TrialOut, ValueEffect

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
OPEN_JOB = ("queued", "running")
# Trial states that will not change again.
FINAL = frozenset({"done", "stopped", "failed", "cancelled"})
# An advance holds its turn this long at most; a crashed one's turn passes after it.
ADVANCE_TURN_S = 60.0
MAX_TAGS = 32


class SweepNotFound(NotFound):
    code = "sweep_not_found"

    def __init__(self, sweep_id: str) -> None:
        super().__init__(f"sweep {sweep_id!r} does not exist")


def sweep_tag(sweep_id: str) -> str:
    return f"sweep:{sweep_id}"


# --- the trials' specs ---------------------------------------------------------------


def rungs(spec: SweepSpec) -> list[int]:
    """The epochs each rung trains to: min_epochs x eta^k up to the base's epochs."""
    epochs = spec.base.training.epochs
    strategy = spec.strategy
    if not isinstance(strategy, Halving):
        return [epochs]
    out = []
    rung = strategy.min_epochs
    while rung < epochs:
        out.append(rung)
        rung *= strategy.eta
    return [*out, epochs]


def trial_spec(spec: SweepSpec, config: dict[str, Any]) -> dict[str, Any]:
    """The complete job spec of a trial: the base as sent, its config applied, and the
    objective's target (so the job stops there and reports its time to it)."""
    raw = apply(spec.base.model_dump(mode="json", exclude_unset=True), config)
    if spec.objective.target is not None:
        training = raw.setdefault("training", {})
        training["target"] = spec.objective.target.model_dump(mode="json")
    return raw


def _job_spec(
    spec: SweepSpec, sweep_id: str, position: int, config: dict[str, Any], epochs: int
) -> dict[str, Any]:
    raw = trial_spec(spec, config)
    raw["training"] = {**raw["training"], "epochs": epochs}
    raw["name"] = f"{spec.name} #{position}"[:200]
    raw["tags"] = [*raw.get("tags", []), sweep_tag(sweep_id)]
    return raw


def _validate(
    session: Session,
    spec: SweepSpec,
    configs: list[dict[str, Any]],
    *,
    tenant: str,
    limits: Settings,
) -> None:
    """Every trial must be a job the service would accept: otherwise a 422 naming the
    space path (or base field) that is wrong, before anything is stored or run."""
    if len(spec.base.tags) >= MAX_TAGS:
        raise SpecInvalid.at("base.tags", f"a sweep tags its trials; give at most {MAX_TAGS - 1}")
    full = spec.base.model_dump(mode="json")
    for path in spec.space:
        if not known_path(full, path):
            raise SpecInvalid.at(
                f"space.{path}",
                "the base spec has no such field; vary a field it has, or a whole object above it",
            )
    if isinstance(spec.strategy, Halving) and "training.epochs" in spec.space:
        raise SpecInvalid.at("space.training.epochs", "halving decides the epochs of each trial")
    if spec.objective.target is not None and "training.target" in spec.space:
        raise SpecInvalid.at("space.training.target", "the objective's target is every trial's")
    try:
        base = JobSpec.model_validate(trial_spec(spec, {}))
        jobs.plan(session, base, tenant=tenant, limits=limits)
    except ValidationError as error:  # the base was valid: the objective's target is not
        raise SpecInvalid.at("objective.target", error.errors()[0]["msg"]) from None
    except SpecInvalid as error:
        raise _renamed(error, field_of=_base_field) from None
    epochs = rungs(spec)[0]
    for position, config in enumerate(configs):
        raw = _job_spec(spec, "validate", position, config, epochs)
        try:
            parsed = JobSpec.model_validate(raw)
        except ValidationError as error:
            problem = error.errors()[0]
            loc = [str(part) for part in problem["loc"]]
            path = _blame(config, loc)
            where = ".".join(loc)
            raise SpecInvalid.at(
                f"space.{path}",
                f"{shown(config.get(path))} makes the spec invalid: {where}: {problem['msg']}",
            ) from None
        try:
            jobs.plan(session, parsed, tenant=tenant, limits=limits)
        except SpecInvalid as error:
            field = error.details[0].field if error.details else "spec"
            path = _blame(config, field.split("."))
            value = shown(config.get(path))
            prefix = f"{value} makes the spec invalid: "
            raise _renamed(error, field_of=_always(f"space.{path}"), prefix=prefix) from None
    session.rollback()  # planning share-locked the datasets; nothing was written


def _blame(config: dict[str, Any], loc: list[str]) -> str:
    """The config path that most likely made the error at `loc` (longest shared prefix)."""
    if not config:
        return "base"

    def shared(path: str) -> int:
        count = 0
        for part, there in zip(path.split("."), [p for p in loc if not p.isdigit()], strict=False):
            if part != there:
                break
            count += 1
        return count

    return max(config, key=shared)


def _always(name: str) -> Callable[[str], str]:
    return lambda _field: name


def _base_field(field: str) -> str:
    """Where in the sweep request a field of the base trial's spec comes from."""
    if field.startswith("training.target"):
        return "objective.target" + field.removeprefix("training.target")
    return f"base.{field}"


def _renamed(
    error: SpecInvalid, *, field_of: Callable[[str], str], prefix: str = ""
) -> SpecInvalid:
    """The error of a trial's spec, named by the sweep request's field."""
    details = [
        ErrorDetail(field_of(d.field), f"{prefix}{d.field}: {d.message}") for d in error.details
    ]
    message = "; ".join(f"{d.field}: {d.message}" for d in details) or error.message
    return SpecInvalid(message, details)


# --- create, read, cancel ------------------------------------------------------------


def create(
    *,
    session: Session,
    dispatcher: Dispatcher,
    notifier: Notifier,
    limits: Settings,
    tenant: str,
    spec: SweepSpec,
) -> Sweep:
    """Expand and validate every trial, store the sweep, then start its first trials."""
    try:
        configs = configurations(spec)
    except SpaceInvalid as error:
        raise SpecInvalid.at(error.path, error.message) from None
    _validate(session, spec, configs, tenant=tenant, limits=limits)
    sweep = Sweep(
        id=new_id("sweep"),
        tenant=tenant,
        name=spec.name,
        status="running",
        reason="submitted",
        spec=spec.model_dump(mode="json", exclude_unset=True),
        created_at=utcnow(),
    )
    sweep.trials = [Trial(position=i, config=c, job_ids=[]) for i, c in enumerate(configs)]
    repository.add(session, sweep)
    session.commit()
    advance(
        session=session, dispatcher=dispatcher, notifier=notifier, limits=limits, sweep_id=sweep.id
    )
    return get(session=session, sweep_id=sweep.id, tenant=tenant)


def get(*, session: Session, sweep_id: str, tenant: str) -> Sweep:
    """The tenant's sweep; another tenant's answers exactly like a missing one."""
    session.expire_all()  # an advance in this session may have changed rows under it
    sweep = repository.get(session, sweep_id)
    if sweep is None or sweep.tenant != tenant:
        raise SweepNotFound(sweep_id)
    return sweep


def page(*, session: Session, tenant: str, limit: int) -> list[Sweep]:
    """The tenant's sweeps, newest first."""
    return repository.page(session, tenant=tenant, limit=limit)


def cancel(*, session: Session, notifier: Notifier, sweep_id: str, tenant: str) -> Sweep:
    """Stop the sweep: no trial starts any more and every open trial job is cancelled."""
    sweep = get(session=session, sweep_id=sweep_id, tenant=tenant)
    if sweep.status in TERMINAL:
        raise InvalidTransition(f"sweep {sweep_id} is already {sweep.status}")
    _end(session, notifier, sweep, "cancelled", "cancelled")
    return get(session=session, sweep_id=sweep_id, tenant=tenant)


def _end(session: Session, notifier: Notifier, sweep: Sweep, status: str, reason: str) -> None:
    """Mark the sweep ended, then cancel its open jobs: found by tag after the commit, so
    a job an advance submits concurrently is either seen here or sees the end itself."""
    sweep.status, sweep.reason, sweep.finished_at = status, reason, utcnow()
    for trial in sweep.trials:
        if trial.state not in FINAL and trial.state != "running":
            trial.state, trial.reason = "cancelled", reason
    session.commit()
    _cancel_open_jobs(session, notifier, sweep)


def _cancel_open_jobs(session: Session, notifier: Notifier, sweep: Sweep) -> None:
    for job_id in repository.open_tagged(session, sweep_tag(sweep.id)):
        try:
            jobs.cancel(session=session, notifier=notifier, job_id=job_id, tenant=sweep.tenant)
        except InvalidTransition:
            session.rollback()  # it ended meanwhile
    for trial in sweep.trials:
        if trial.state == "running":
            trial.state, trial.reason = "cancelled", sweep.reason
    session.commit()


# --- measuring and ranking -----------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """What a trial's jobs so far say: epochs trained, the time the target took (from
    the first training step, across rungs) and the best value of the objective's metric."""

    epochs: int
    reached: bool
    time_to_target_s: float | None
    best: float | None
    compute_s: float


def _elapsed(job: Job) -> float:
    """A finished rung's training wall time: its epochs and checkpoints."""
    timings = job.timings or {}
    return float(sum(timings.get("epoch_s") or []) + (timings.get("checkpoint_s") or 0.0))


def compute_s(trial_jobs: list[Job]) -> float:
    """What the jobs cost: their training and evaluation time."""
    total = 0.0
    for job in trial_jobs:
        timings = job.timings or {}
        total += float(timings.get("train_s") or 0.0) + float(timings.get("eval_s") or 0.0)
    return total


def measure(objective: Objective, trial_jobs: list[Job]) -> Measure | None:
    """The trial as its succeeded jobs left it; None before its first job succeeded."""
    done = [job for job in trial_jobs if job.status == "succeeded" and job.result]
    if not done:
        return None
    metric, higher = objective.metric, objective.higher_is_better
    # The jobs' best rows are by the target's metric (else validation), so the final
    # row may hold a better value of another metric: the better of the two counts.
    rows = [(job.result or {}).get(kind, {}) for job in done for kind in ("best", "final")]
    values = [float(row[metric]) for row in rows if isinstance(row.get(metric), int | float)]
    best = (max(values) if higher else min(values)) if values else None
    reached, time_to_target, before = False, None, 0.0
    for job in done:
        timings = job.timings or {}
        if timings.get("time_to_target_s") is not None:
            reached, time_to_target = True, before + float(timings["time_to_target_s"])
            break
        before += _elapsed(job)
    compute = compute_s(trial_jobs)
    last = done[-1].result or {}
    epochs = int(last.get("final", {}).get("epoch", last.get("epochs", 0)))
    return Measure(epochs, reached, time_to_target, best, compute)


def rank_key(objective: Objective, measured: Measure) -> tuple[int, float]:
    """Smaller is better: reached the target first (by time), then by the metric."""
    if objective.target is not None and measured.reached:
        assert measured.time_to_target_s is not None
        return 0, measured.time_to_target_s
    if measured.best is None:
        return 2, 0.0
    return 1, -measured.best if objective.higher_is_better else measured.best


# --- advancing -----------------------------------------------------------------------


def advance_for_job(
    *, session: Session, dispatcher: Dispatcher, notifier: Notifier, limits: Settings, job_id: str
) -> None:
    """A job ended: advance its sweep, if it is a trial of one."""
    sweep_id = repository.sweep_of_job(session, job_id)
    session.rollback()
    if sweep_id is not None:
        advance(
            session=session,
            dispatcher=dispatcher,
            notifier=notifier,
            limits=limits,
            sweep_id=sweep_id,
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
    found = repository.jobs(session, (j for t in sweep.trials for j in t.job_ids))
    for trial in sweep.trials:
        if trial.state == "running" and trial.job_id is not None:
            _record_rung(trial, found[trial.job_id], last=trial.rung == len(epochs) - 1)
    budget = spec.budget
    if budget.max_total_s is not None and utcnow() - sweep.created_at > timedelta(
        seconds=budget.max_total_s
    ):
        measured = _any_measured(session, spec, sweep)
        _end(session, notifier, sweep, "succeeded" if measured else "failed", "max_total_s")
        return
    if isinstance(spec.strategy, Halving):
        _decide_rungs(spec, sweep.trials, found, len(epochs))
    session.commit()
    _submit_next(session, dispatcher, notifier, limits, sweep, spec, epochs, budget)
    session.refresh(sweep)
    if sweep.status == "running" and all(trial.state in FINAL for trial in sweep.trials):
        measured = _any_measured(session, spec, sweep)
        sweep.status = "succeeded" if measured else "failed"
        sweep.reason = "completed" if measured else "no trial finished"
        sweep.finished_at = utcnow()
        session.commit()


def _any_measured(session: Session, spec: SweepSpec, sweep: Sweep) -> bool:
    """Whether any trial has a result to rank (a sweep without one has failed)."""
    found = repository.jobs(session, (j for t in sweep.trials for j in t.job_ids))
    return any(measure(spec.objective, [found[j] for j in t.job_ids]) for t in sweep.trials)


def _record_rung(trial: Trial, job: Job, *, last: bool) -> None:
    if job.status in OPEN_JOB:
        return
    if job.status == "succeeded":
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
            if len(trial.job_ids) > rung and found[trial.job_ids[rung]].status == "succeeded":
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
        previous = repository.jobs(session, [trial.job_ids[-1]])[trial.job_ids[-1]]
        trained = int((previous.result or {}).get("final", {}).get("epoch", 0))
        job_spec = jobs.continuation(session, previous, epochs - trained)
    else:
        job_spec = JobSpec.model_validate(
            _job_spec(spec, sweep.id, trial.position, trial.config, epochs)
        )
    return jobs.submit(
        session=session,
        dispatcher=dispatcher,
        notifier=notifier,
        limits=limits,
        tenant=sweep.tenant,
        spec=job_spec,
        # The same trial and rung always make the same job, however often this runs.
        idempotency_key=f"{sweep_tag(sweep.id)}:{trial.position}:{len(trial.job_ids)}",
    )


# --- advice --------------------------------------------------------------------------

# The seed's levers, each with learning rates that work for it on small nets: the
# advisor tries these against the base spec itself.
ADVISED_OPTIMIZERS: list[dict[str, Any]] = [
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
    {"name": "adam", "lr": 0.003},
    {"name": "adam", "lr": 0.01},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
    {"name": "rmsprop", "lr": 0.001},
]
ADVISED_BATCH_SIZES = [64, 128, 256]
ADVISED_SCHEDULES: list[dict[str, Any]] = [{"name": "constant"}, {"name": "onecycle"}]
ADVISED_PRECISIONS = ["fp32", "auto"]
ADVISED_TRIALS = 12
ADVISED_ETA = 3


def advise(
    *,
    session: Session,
    dispatcher: Dispatcher,
    notifier: Notifier,
    limits: Settings,
    tenant: str,
    request: AdviseRequest,
) -> Sweep:
    """Start the advisor's sweep for a base spec (see advice_spec)."""
    spec = advice_spec(request.base, request.target, request.budget, request.name)
    return create(
        session=session,
        dispatcher=dispatcher,
        notifier=notifier,
        limits=limits,
        tenant=tenant,
        spec=spec,
    )


def advice_spec(base: JobSpec, target: Target | None, budget: Budget, name: str) -> SweepSpec:
    """The advisor's sweep: the base against sampled optimizer, batch size, schedule and
    precision choices, halving on time to the target."""
    chosen = target or base.training.target
    if chosen is None:
        raise SpecInvalid.at("target", "give a target, or a base spec with training.target")
    rung = max(1, math.ceil(base.training.epochs / ADVISED_ETA**2))
    return SweepSpec.model_validate(
        {
            "name": name,
            "base": base.model_dump(mode="json", exclude_unset=True),
            "space": {
                "optimizer": ADVISED_OPTIMIZERS,
                "training.batch_size": ADVISED_BATCH_SIZES,
                "schedule": ADVISED_SCHEDULES,
                "training.precision": ADVISED_PRECISIONS,
            },
            "strategy": {
                "name": "halving",
                "trials": min(ADVISED_TRIALS, budget.max_trials - 1) or 1,
                "eta": ADVISED_ETA,
                "min_epochs": min(rung, MAX_MIN_EPOCHS),
            },
            "objective": {"minimize": "time_to_target", "target": chosen.model_dump(mode="json")},
            "budget": budget.model_dump(mode="json", exclude_none=True),
            "include_base": True,
        }
    )


# --- what the client sees ------------------------------------------------------------


def describe(*, session: Session, sweep: Sweep) -> SweepOut:
    """The sweep with its trials measured, ranked and explained."""
    spec = SweepSpec.model_validate(sweep.spec)
    objective = spec.objective
    found = repository.jobs(session, (j for t in sweep.trials for j in t.job_ids))
    trials: list[TrialOut] = []
    measured: dict[int, Measure] = {}
    for trial in sweep.trials:
        trial_jobs = [found[j] for j in trial.job_ids if j in found]
        m = measure(objective, trial_jobs)
        if m is not None:
            measured[trial.position] = m
        current = found.get(trial.job_id) if trial.job_id else None
        trials.append(
            TrialOut(
                position=trial.position,
                config=trial.config,
                state=trial.state,
                reason=trial.reason,
                rung=trial.rung,
                job_id=trial.job_id,
                jobs=trial.job_ids,
                job_status=current.status if current else None,
                epochs=m.epochs if m else None,
                time_to_target_s=m.time_to_target_s if m else None,
                best=m.best if m else None,
                compute_s=compute_s(trial_jobs),
            )
        )
    leaderboard = sorted(measured, key=lambda p: (rank_key(objective, measured[p]), p))
    best = None
    if leaderboard:
        top = leaderboard[0]
        config = sweep.trials[top].config
        # As the winner last ran: with its rung's epochs, since a schedule such as
        # one-cycle spans the job's epochs and what was measured must be what is offered.
        raw = trial_spec(spec, config)
        raw["training"] = {**raw["training"], "epochs": rungs(spec)[sweep.trials[top].rung]}
        winner = JobSpec.model_validate(raw)
        base = measured.get(0) if spec.include_base else None
        speedup = None
        fastest = measured[top].time_to_target_s
        if base is not None and base.time_to_target_s and fastest:
            speedup = base.time_to_target_s / fastest
        best = Best(
            trial=top,
            config=config,
            spec=winner.model_dump(mode="json", exclude_unset=True),
            time_to_target_s=measured[top].time_to_target_s,
            best=measured[top].best,
            speedup=speedup,
        )
    explanation = _effects(spec, sweep.trials, measured)
    return SweepOut(
        id=sweep.id,
        name=sweep.name,
        status=sweep.status,
        reason=sweep.reason,
        created_at=sweep.created_at,
        finished_at=sweep.finished_at,
        strategy=spec.strategy.model_dump(mode="json"),
        objective=objective.model_dump(mode="json", exclude_none=True),
        budget=spec.budget.model_dump(mode="json"),
        rungs=rungs(spec),
        trials=trials,
        leaderboard=leaderboard,
        best=best,
        explanation=explanation,
        summary=[_said(objective, effect) for effect in explanation if len(effect.values) > 1],
        compute_s=sum(t.compute_s for t in trials),
    )


def _effects(
    spec: SweepSpec, trials: list[Trial], measured: dict[int, Measure]
) -> list[PathEffect]:
    """Per varied field, each value's best result among the trials that tried it."""
    objective = spec.objective
    effects = []
    for path in spec.space:
        groups: dict[str, list[Measure]] = {}
        for trial in trials:
            if path in trial.config and trial.position in measured:
                groups.setdefault(shown(trial.config[path]), []).append(measured[trial.position])
        values = []
        for value, group in groups.items():
            top = min(group, key=lambda m: rank_key(objective, m))
            times = [m.time_to_target_s for m in group if m.time_to_target_s is not None]
            values.append(
                (
                    rank_key(objective, top),
                    ValueEffect(
                        value=value,
                        trials=len(group),
                        reached=len(times),
                        best_time_to_target_s=min(times) if times else None,
                        best=top.best,
                    ),
                )
            )
        values.sort(key=lambda pair: pair[0])
        effects.append(PathEffect(path=path, values=[effect for _, effect in values]))
    return effects


def _said(objective: Objective, effect: PathEffect) -> str:
    first, last = effect.values[0], effect.values[-1]

    def result(value: ValueEffect) -> str:
        if objective.target is not None and value.best_time_to_target_s is not None:
            return f"{value.best_time_to_target_s:.2f} s to the target"
        if value.best is None:
            return "no result"
        return f"best {objective.metric} {value.best:.4g}"

    return (
        f"{effect.path}: {first.value} did best ({result(first)}); "
        f"{last.value} worst ({result(last)})"
    )
