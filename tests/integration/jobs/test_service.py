"""The job rules on real databases: claims are compare-and-set, writes are fenced,
seqs stay contiguous under concurrent appends, expired leases are reaped."""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
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

pytestmark = pytest.mark.usefixtures("backend")
NOTIFIER = NoNotifier()
LEASE_S = 30.0


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    yield make_session_factory(engine)
    engine.dispose()


def submitted(settings: Settings, sessions: sessionmaker[Session], tenant: str = "alpha") -> str:
    with sessions() as session:
        job = jobs.submit(
            session=session,
            dispatcher=Dispatcher(settings),
            notifier=NOTIFIER,
            limits=settings,
            tenant=tenant,
            spec=JobSpec.model_validate(small_job()),
        )
    return job.id


def claim(
    sessions: sessionmaker[Session],
    job_id: str,
    worker: str = "w1",
    max_running: int | None = None,
) -> transitions.Claim | None:
    with sessions() as session:
        return transitions.claim(
            session=session,
            notifier=NOTIFIER,
            job_id=job_id,
            worker=worker,
            lease_ttl_s=LEASE_S,
            max_running=max_running,
        )


def test_only_the_first_of_two_claims_wins(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    job_id = submitted(settings, sessions)

    first = claim(sessions, job_id, "w1")
    second = claim(sessions, job_id, "w2")

    assert first is not None and (first.attempt, first.fence) == (1, 1)
    assert second is None
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.status, job.worker) == ("running", "w1")


def test_concurrent_claims_let_exactly_one_worker_run_the_job(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    job_id = submitted(settings, sessions)
    results: list[transitions.Claim | None] = []
    barrier = threading.Barrier(6)

    def race(worker: str) -> None:
        barrier.wait()
        results.append(claim(sessions, job_id, worker))

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len([r for r in results if r is not None]) == 1


def test_writes_under_a_superseded_fence_are_refused(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    job_id = submitted(settings, sessions)
    old = claim(sessions, job_id)
    assert old is not None
    with sessions() as session:  # the lease expires and the reaper hands the job back
        session.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
        assert transitions.reap(session=session, notifier=NOTIFIER, max_restarts=3) == [job_id]
    new = claim(sessions, job_id, "w2")
    assert new is not None and (new.attempt, new.fence) == (2, old.fence + 2)

    log = NewEvent(type="log", data={"message": "from the old worker"})
    with sessions() as session, pytest.raises(events.FenceLost):
        transitions.record(session=session, notifier=NOTIFIER, claim=old, new=[log])
    with sessions() as session, pytest.raises(events.FenceLost):
        transitions.renew(session=session, claim=old, lease_ttl_s=LEASE_S)
    with sessions() as session, pytest.raises(events.FenceLost):
        transitions.finish(
            session=session, notifier=NOTIFIER, claim=old, status="succeeded", reason="x"
        )
    with sessions() as session:
        reasons = [
            (e.data["status"], e.data["reason"])
            for e in events.page(session, job_id, after=0, limit=100)
            if e.type == "status"
        ]
    assert reasons[:3] == [
        ("queued", "submitted"),
        ("running", "claimed by w1"),
        ("queued", "worker_lost"),
    ]
    assert reasons[3][0] == "running"


def test_concurrent_appends_keep_seqs_contiguous(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    job_id = submitted(settings, sessions)
    held = claim(sessions, job_id)
    assert held is not None

    def append_many(writer: int) -> None:
        for i in range(10):
            batch = [
                NewEvent(type="log", data={"writer": writer, "i": i, "j": j}) for j in range(3)
            ]
            with sessions() as session:
                transitions.record(session=session, notifier=NOTIFIER, claim=held, new=batch)

    threads = [threading.Thread(target=append_many, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with sessions() as session:
        seqs = [e.seq for e in events.page(session, job_id, after=0, limit=1000)]
        job = session.get(Job, job_id)
    assert seqs == list(range(1, 2 + 120 + 1))
    assert job is not None and job.last_seq == seqs[-1]


def test_reaping_a_job_whose_cancel_was_asked_cancels_it(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    job_id = submitted(settings, sessions)
    assert claim(sessions, job_id) is not None
    with sessions() as session:
        jobs.cancel(session=session, notifier=NOTIFIER, job_id=job_id, tenant="alpha")
        session.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
        transitions.reap(session=session, notifier=NOTIFIER, max_restarts=3)
        job = session.get(Job, job_id)
        assert job is not None
        session.refresh(job)
        assert (job.status, job.reason) == ("cancelled", "cancelled")
        with pytest.raises(InvalidTransition):
            jobs.cancel(session=session, notifier=NOTIFIER, job_id=job_id, tenant="alpha")


def test_redispatch_rings_again_only_for_old_doorbells(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    fresh = submitted(settings, sessions)
    old = submitted(settings, sessions)
    with sessions() as session:
        session.execute(
            update(Job).where(Job.id == old).values(dispatched_at=utcnow() - timedelta(hours=1))
        )
        session.commit()
        rung = transitions.redispatch(
            session=session, dispatcher=Dispatcher(settings), older_than_s=60
        )

    assert rung == [old]
    assert fresh not in rung


def test_a_tenant_at_its_running_cap_waits_while_other_tenants_run(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    first, second = submitted(settings, sessions), submitted(settings, sessions)
    other = submitted(settings, sessions, tenant="beta")

    assert claim(sessions, first, max_running=1) is not None
    assert claim(sessions, second, max_running=1) is None
    assert claim(sessions, other, max_running=1) is not None
    with sessions() as session:
        waiting = session.get(Job, second)
        assert waiting is not None and waiting.status == "queued"
