"""A sweep's life as a client sees it: create (every trial validated first), read,
cancel, follow, and the description with its trials measured and ranked.

Trials are ordinary jobs tagged `sweep:<id>`; the sweep's state is its rows, brought up
to date by advance.py.
"""

import asyncio
from collections.abc import AsyncIterator

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.broker import Dispatcher
from app.config import Settings
from app.errors import InvalidTransition, NotFound, SpecInvalid
from app.events.notify import Notifier
from app.ids import new_id
from app.jobs import repository as jobs_repository
from app.jobs.status import TERMINAL, JobStatus
from app.orm import Sweep, Trial
from app.orm.base import utcnow
from app.spec import JobSpec
from app.spec.sweeps import SpaceInvalid, SweepSpec, configurations
from app.sweeps import repository
from app.sweeps.advance import advance, end
from app.sweeps.ranking import Measure, compute_s, effects, measure, rank_key, said
from app.sweeps.schemas import Best, SweepOut, TrialOut
from app.sweeps.trials import rungs, trial_spec, validate


class SweepNotFound(NotFound):
    code = "sweep_not_found"

    def __init__(self, sweep_id: str) -> None:
        super().__init__(f"sweep {sweep_id!r} does not exist")


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
    validate(session, spec, configs, tenant=tenant, limits=limits)
    sweep = Sweep(
        id=new_id("sweep"),
        tenant=tenant,
        name=spec.name,
        status=JobStatus.RUNNING,
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
    end(session, notifier, sweep, JobStatus.CANCELLED, "cancelled")
    return get(session=session, sweep_id=sweep_id, tenant=tenant)


def describe(*, session: Session, sweep: Sweep) -> SweepOut:
    """The sweep with its trials measured, ranked and explained."""
    spec = SweepSpec.model_validate(sweep.spec)
    objective = spec.objective
    found = jobs_repository.by_ids(session, (j for t in sweep.trials for j in t.job_ids))
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
    explanation = effects(spec, sweep.trials, measured)
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
        summary=[said(objective, effect) for effect in explanation if len(effect.values) > 1],
        compute_s=sum(t.compute_s for t in trials),
    )


async def changes(
    sessions: sessionmaker[Session], *, sweep_id: str, tenant: str, poll_s: float
) -> AsyncIterator[SweepOut]:
    """The sweep as `describe` shows it, again whenever it changes, until it has ended.
    A sweep has no event log of its own: its rows are read again every `poll_s`."""

    def read() -> SweepOut:
        with sessions() as session:
            sweep = get(session=session, sweep_id=sweep_id, tenant=tenant)
            return describe(session=session, sweep=sweep)

    sent = None
    while True:
        view = await run_in_threadpool(read)
        shown = view.model_dump_json()
        if shown != sent:
            yield view
            sent = shown
        if view.status in TERMINAL:
            return
        await asyncio.sleep(poll_s)
