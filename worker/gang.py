"""The worker's side of a multi-worker DDP job (a gang): lead it or join it.

The worker that claims the job leads: it opens the gang in the database with its
rendezvous address, rings the other workers and waits, renewing its lease, until every
slot is taken; then its trainer hosts the rendezvous as node 0 and supervises the job as
for any other. A worker that answers the ring takes a slot and runs its node's ranks
until they end or the job stops running; it writes nothing about the job: node 0 holds
rank 0, which reports everything.
"""

import logging
import socket
import time
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.broker import JOIN_TASK, Dispatcher
from app.config import Settings
from app.events.notify import Notifier
from app.gangs import service as gangs
from app.jobs.attempt import InputGone
from app.jobs.protocol import GangSeat, TrainerPayload
from app.jobs.transitions import Claim
from worker import processes
from worker.outcome import Outcome

logger = logging.getLogger(__name__)

GANG_INCOMPLETE = "gang_incomplete"
# How often a gang's leader looks whether the gang is complete (and renews its lease).
TICK_S = 0.5


class Host(Protocol):
    """The worker's supervisor, as a gang sees it (worker/supervisor.py)."""

    settings: Settings
    sessions: sessionmaker[Session]
    notifier: Notifier
    worker_id: str
    current_job: str | None

    def tick(self, claim: Claim, outcome: Outcome) -> bool: ...

    def payload(self, claim: Claim) -> TrainerPayload: ...


def free_port(host: str) -> int:
    """A port free on `host` now; node 0's trainer listens on it a moment later."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def lead(supervisor: Host, claim: Claim, outcome: Outcome) -> GangSeat | None:
    """Form the job's gang: node 0's seat, or None when the job was cancelled, lost, or
    went back to the queue because the gang did not form in time."""
    settings, size = supervisor.settings, claim.spec.distributed.nodes
    host = settings.gang_host
    port = free_port(host)
    with supervisor.sessions() as session:
        gangs.open_gang(
            session=session,
            claim=claim,
            worker=supervisor.worker_id,
            nodes=size,
            address=f"{host}:{port}",
        )
    device = claim.spec.resources.device
    dispatcher = Dispatcher(settings)
    for _ in range(size - 1):
        dispatcher.try_send(claim.job_id, device, JOIN_TASK)
    deadline = time.monotonic() + settings.gang_timeout_s
    while True:
        supervisor.tick(claim, outcome)
        if outcome.cancelled or outcome.lost:
            return None
        with supervisor.sessions() as session:
            if gangs.complete(session=session, claim=claim, nodes=size):
                return GangSeat(node=0, host=host, port=port)
        if time.monotonic() > deadline:
            with supervisor.sessions() as session:
                requeued = gangs.disband(
                    session=session,
                    notifier=supervisor.notifier,
                    claim=claim,
                    reason=GANG_INCOMPLETE,
                )
            if requeued:
                dispatcher.try_send(claim.job_id, device)
            outcome.lost = True  # the job is no longer ours to write about
            return None
        time.sleep(TICK_S)


def follow(supervisor: Host, job_id: str) -> None:
    """Join the job's gang if it has an open slot, and run this node's ranks."""
    with supervisor.sessions() as session:
        seat = gangs.join(session=session, job_id=job_id, worker=supervisor.worker_id)
    if seat is None:
        logger.info("job %s has no open gang slot", job_id)
        return
    try:
        payload = supervisor.payload(seat.claim)
    except InputGone as error:
        logger.warning("cannot join job %s: %s", job_id, error)
        return
    host, port = seat.address.rsplit(":", 1)
    events, process = processes.start(
        payload.joining(GangSeat(node=seat.node, host=host, port=int(port)))
    )
    supervisor.current_job = job_id
    try:
        while process.exitcode is None:
            # Node 0 reports the job; this node's launcher logs are only drained.
            while events.poll(TICK_S):
                try:
                    events.recv_bytes()
                except EOFError:
                    break
            process.join(TICK_S)
            with supervisor.sessions() as session:
                if not gangs.still_on(session=session, seat=seat):
                    break
    finally:
        events.close()
        processes.stop(process)
        supervisor.current_job = None
