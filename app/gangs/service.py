"""Gangs: the workers that train one multi-worker DDP job together.

The worker that claims the job is node 0: it opens the gang (one slot a node, its own
holding the rendezvous address) and rings the other workers. Each worker that answers
takes an open slot by compare-and-set and starts its ranks against that address. Slots
carry the claim's fence, so a slot of an earlier attempt is never joined. When the gang
is not complete in time, node 0 releases every slot and puts the job back in the queue:
no worker waits for ever and no partial gang trains.
"""

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.events.notify import Notifier
from app.gangs import repository
from app.jobs import repository as jobs_repository
from app.jobs import transitions
from app.jobs.status import JobStatus
from app.jobs.transitions import Claim
from app.orm import GangSlot
from app.orm.base import utcnow

# A job whose gang failed to form this many times fails instead of waiting for ever: the
# fleet no longer has its nodes (a fleet too small at submit is refused with a 422).
GANG_TRIES = 3
UNSCHEDULABLE = "unschedulable"


@dataclass(frozen=True)
class Seat:
    """A joining worker's place in a gang: which node, and where node 0 listens."""

    claim: Claim
    node: int
    address: str


def open_gang(*, session: Session, claim: Claim, worker: str, nodes: int, address: str) -> None:
    """Node 0 is this worker, listening at `address`; nodes 1.. wait for others."""
    now = utcnow()
    slots = [
        GangSlot(
            job_id=claim.job_id,
            node=0,
            fence=claim.fence,
            worker=worker,
            address=address,
            joined_at=now,
        )
    ]
    slots += [
        GangSlot(job_id=claim.job_id, node=node, fence=claim.fence) for node in range(1, nodes)
    ]
    repository.replace(session, slots)
    session.commit()


def complete(*, session: Session, claim: Claim, nodes: int) -> bool:
    return repository.joined(session, claim.job_id, claim.fence) == nodes


def join(*, session: Session, job_id: str, worker: str) -> Seat | None:
    """Take an open slot of the job's running gang; None when there is none to take."""
    job = jobs_repository.get(session, job_id)
    if job is None or job.status != JobStatus.RUNNING:
        return None
    leader = repository.leader(session, job_id, job.fence)
    if leader is None or leader.address is None:
        return None
    for slot in repository.open_slots(session, job_id, job.fence):
        if repository.take(session, slot, worker, utcnow()):
            session.commit()
            return Seat(Claim.of(job, job.started_at or utcnow()), slot.node, leader.address)
    session.rollback()
    return None


def still_on(*, session: Session, seat: Seat) -> bool:
    """Whether the gang's job still runs as the attempt this seat joined."""
    job = jobs_repository.get(session, seat.claim.job_id)
    return job is not None and job.status == JobStatus.RUNNING and job.fence == seat.claim.fence


def disband(*, session: Session, notifier: Notifier, claim: Claim, reason: str) -> bool:
    """Release every slot and put the job back in the queue, or, after `GANG_TRIES` gangs
    that did not form (the fleet shrank below the job's nodes), fail it `unschedulable`;
    False if it was not ours."""
    repository.remove(session, claim.job_id)
    give_up = repository.requeued_for(session, claim.job_id, reason) + 1 >= GANG_TRIES
    return transitions.disband(
        session=session,
        notifier=notifier,
        claim=claim,
        reason=UNSCHEDULABLE if give_up else reason,
        give_up=give_up,
    )
