"""Append to, read and follow a job's event log."""

from collections.abc import AsyncIterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.errors import AppError, JobNotFound
from app.events import repository
from app.events.notify import Wakeups
from app.events.schemas import EventOut, NewEvent
from app.jobs.status import TERMINAL
from app.orm import Event, Job
from app.orm.base import utcnow

REPLAY_PAGE = 500


class FenceLost(AppError):
    """A worker wrote about a job it no longer holds: its claim was superseded or ended."""

    status_code = 409
    code = "fence_lost"


def append(
    session: Session, job_id: str, events: Sequence[NewEvent], *, fence: int | None = None
) -> list[Event]:
    """Append events in the caller's transaction; with `fence`, only while that claim holds."""
    if not events:
        return []
    last = repository.reserve_seqs(session, job_id, len(events), fence=fence)
    if last is None:
        if fence is not None:
            raise FenceLost(f"job {job_id} is no longer held with fence {fence}")
        raise JobNotFound(job_id)
    return repository.insert(session, job_id, last - len(events) + 1, events, utcnow())


def page(
    session: Session, job_id: str, *, after: int, limit: int, types: Sequence[str] = ()
) -> list[Event]:
    if session.get(Job, job_id) is None:
        raise JobNotFound(job_id)
    return repository.after(session, job_id, after, limit, types)


def newest_seq(factory: sessionmaker[Session], job_id: str) -> int | None:
    """The job's newest seq (None if there is no such job): all a watch needs to poll."""
    with factory() as session:
        return session.scalar(select(Job.last_seq).where(Job.id == job_id))


def is_terminal(event: EventOut) -> bool:
    return event.type == "status" and event.data.get("status") in TERMINAL


async def follow(
    factory: sessionmaker[Session], wakeups: Wakeups, job_id: str, *, tenant: str, after: int
) -> AsyncIterator[EventOut]:
    """Stored events after `after`, then live ones, ending with the terminal status event.

    One path for replay and live: every read is from the table after the last seq sent,
    and a wake-up only says when to read again, so reconnecting with `after` neither loses
    nor repeats an event.
    """

    def read(cursor: int) -> tuple[list[EventOut], bool]:
        with factory() as session:
            job = session.get(Job, job_id)
            if job is None or job.tenant != tenant:
                raise JobNotFound(job_id)
            rows = repository.after(session, job_id, cursor, REPLAY_PAGE)
            caught_up = len(rows) < REPLAY_PAGE
            finished = job.status in TERMINAL and job.last_seq <= cursor + len(rows)
            return [EventOut.model_validate(row, from_attributes=True) for row in rows], (
                caught_up and finished
            )

    cursor = after
    async with wakeups:
        while True:
            # The database session lives only for one read, never across a wait.
            events, finished = await run_in_threadpool(read, cursor)
            for event in events:
                cursor = event.seq
                yield event
                if is_terminal(event):
                    return
            if finished:
                return
            if len(events) < REPLAY_PAGE:
                await wakeups.wait(cursor)
