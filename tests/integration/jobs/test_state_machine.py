"""The job state machine under random interleavings (hypothesis), on SQLite through the
real migrations: submit, claim, duplicate claims, heartbeats, lease expiry, reaping,
cancel, hand-back and finish keep the invariants: legal transitions only, terminal
states final, at most one live lease, exactly one terminal event."""

import itertools
from datetime import timedelta

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.broker import Dispatcher
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.errors import InvalidTransition
from app.events import service as events
from app.events.notify import NoNotifier
from app.events.schemas import NewEvent
from app.jobs import service as jobs
from app.jobs import transitions
from app.orm import Job
from app.orm.base import utcnow
from app.spec import JobSpec
from tests.client import small_job

NOTIFIER = NoNotifier()
LEASE_S = 30.0
MAX_RESTARTS = 2
TERMINAL = {"succeeded", "failed", "cancelled"}
LEGAL = {
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "queued"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
}
WORKERS = st.sampled_from(["w1", "w2", "w3"])
PICK = st.integers(min_value=0, max_value=1_000)


TENANT = "alpha"


def machine(
    sessions: sessionmaker[Session], dispatcher: Dispatcher, limits: Settings
) -> type[RuleBasedStateMachine]:
    class JobLife(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.jobs: list[str] = []
            self.claims: list[transitions.Claim] = []  # every claim ever won, stale ones too

        def job(self, pick: int) -> str:
            return self.jobs[pick % len(self.jobs)]

        def claim_of(self, pick: int) -> transitions.Claim:
            return self.claims[pick % len(self.claims)]

        def row(self, session: Session, job_id: str) -> Job:
            job = session.get(Job, job_id)
            assert job is not None
            return job

        def holds(self, claim: transitions.Claim) -> bool:
            with sessions() as session:
                job = self.row(session, claim.job_id)
                return job.status == "running" and job.fence == claim.fence

        @rule()
        def submit(self) -> None:
            with sessions() as session:
                job = jobs.submit(
                    session=session,
                    dispatcher=dispatcher,
                    notifier=NOTIFIER,
                    limits=limits,
                    tenant=TENANT,
                    spec=JobSpec.model_validate(small_job()),
                )
            self.jobs.append(job.id)

        @precondition(lambda self: self.jobs)
        @rule(pick=PICK, worker=WORKERS)
        def claim(self, pick: int, worker: str) -> None:
            """A doorbell, first or duplicate: only a queued job can be claimed."""
            job_id = self.job(pick)
            with sessions() as session:
                was = self.row(session, job_id).status
                won = transitions.claim(
                    session=session,
                    notifier=NOTIFIER,
                    job_id=job_id,
                    worker=worker,
                    lease_ttl_s=LEASE_S,
                )
            assert (won is not None) == (was == "queued")
            if won is not None:
                self.claims.append(won)

        @precondition(lambda self: self.claims)
        @rule(pick=PICK)
        def heartbeat(self, pick: int) -> None:
            claim = self.claim_of(pick)
            held = self.holds(claim)
            with sessions() as session:
                try:
                    transitions.renew(session=session, claim=claim, lease_ttl_s=LEASE_S)
                    renewed = True
                except events.FenceLost:
                    renewed = False
            assert renewed == held

        @precondition(lambda self: self.claims)
        @rule(pick=PICK)
        def write_events(self, pick: int) -> None:
            claim = self.claim_of(pick)
            held = self.holds(claim)
            log = NewEvent(type="log", data={"message": "progress"})
            with sessions() as session:
                try:
                    transitions.record(session=session, notifier=NOTIFIER, claim=claim, new=[log])
                    written = True
                except events.FenceLost:
                    written = False
            assert written == held

        @precondition(lambda self: self.jobs)
        @rule(pick=PICK)
        def expire(self, pick: int) -> None:
            """Time passes beyond a lease (only a running job has one)."""
            with sessions() as session:
                session.execute(
                    update(Job)
                    .where(Job.id == self.job(pick), Job.lease_expires_at.is_not(None))
                    .values(lease_expires_at=utcnow() - timedelta(seconds=1))
                )
                session.commit()

        @rule()
        def reap(self) -> None:
            with sessions() as session:
                transitions.reap(session=session, notifier=NOTIFIER, max_restarts=MAX_RESTARTS)

        @precondition(lambda self: self.jobs)
        @rule(pick=PICK)
        def cancel(self, pick: int) -> None:
            job_id = self.job(pick)
            with sessions() as session:
                was = self.row(session, job_id).status
                try:
                    jobs.cancel(session=session, notifier=NOTIFIER, job_id=job_id, tenant=TENANT)
                    refused = False
                except InvalidTransition:
                    refused = True
            assert refused == (was in TERMINAL)

        @precondition(lambda self: self.claims)
        @rule(pick=PICK, status=st.sampled_from(["succeeded", "failed", "cancelled"]))
        def finish(self, pick: int, status: str) -> None:
            claim = self.claim_of(pick)
            held = self.holds(claim)
            with sessions() as session:
                try:
                    transitions.finish(
                        session=session, notifier=NOTIFIER, claim=claim, status=status, reason="x"
                    )
                    done = True
                except events.FenceLost:
                    done = False
            assert done == held

        @precondition(lambda self: self.claims)
        @rule(pick=PICK, restart=st.booleans())
        def hand_back(self, pick: int, restart: bool) -> None:
            claim = self.claim_of(pick)
            held = self.holds(claim)
            with sessions() as session:
                try:
                    transitions.release(
                        session=session,
                        notifier=NOTIFIER,
                        claim=claim,
                        reason="worker_stopping",
                        restart=restart,
                        max_restarts=MAX_RESTARTS,
                    )
                    released = True
                except events.FenceLost:
                    released = False
            assert released == held

        @invariant()
        def transitions_are_legal_and_the_end_is_final(self) -> None:
            with sessions() as session:
                for job_id in self.jobs:
                    job = self.row(session, job_id)
                    log = events.page(session, job_id, after=0, limit=10_000)
                    assert [e.seq for e in log] == list(range(1, job.last_seq + 1))
                    statuses = [e.data["status"] for e in log if e.type == "status"]
                    assert statuses[0] == "queued"
                    assert all(pair in LEGAL for pair in itertools.pairwise(statuses))
                    assert statuses[-1] == job.status
                    ends = [s for s in statuses if s in TERMINAL]
                    assert len(ends) == (1 if job.status in TERMINAL else 0)
                    assert statuses.count("running") == job.attempt
                    assert job.restarts <= MAX_RESTARTS

        @invariant()
        def at_most_one_live_lease(self) -> None:
            with sessions() as session:
                for job_id in self.jobs:
                    job = self.row(session, job_id)
                    live = [
                        c
                        for c in self.claims
                        if c.job_id == job_id and c.fence == job.fence and job.status == "running"
                    ]
                    assert len(live) == (1 if job.status == "running" else 0)
                    assert (job.lease_expires_at is not None) == (job.status == "running")

    return JobLife


def test_random_interleavings_keep_the_job_invariants(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        run_state_machine_as_test(
            machine(
                make_session_factory(engine),
                Dispatcher(settings),
                # Jobs pile up across examples in one database: no queue cap here.
                settings.model_copy(update={"max_queued_jobs": 10**9}),
            ),
            settings=hypothesis_settings(
                max_examples=50,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        engine.dispose()
