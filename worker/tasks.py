"""The train task, and the worker's housekeeping: heartbeat, reaper, reconciler."""

import logging
import os
import socket
import threading
from pathlib import Path

from celery import Celery
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from app.broker import JOIN_TASK, TRAIN_TASK, Dispatcher
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.events.notify import make_notifier
from app.jobs import transitions as jobs
from app.orm.base import utcnow
from app.storage import Storage
from app.sweeps import advance as sweeps
from app.workers import service as workers
from worker import gang
from worker.processes import warm_up
from worker.supervisor import Supervisor

logger = logging.getLogger(__name__)


def local_device(settings: Settings) -> str:
    """What this worker trains on, without importing torch or touching CUDA here: the
    setting, else whether the host shows an NVIDIA GPU."""
    if settings.worker_device != "auto":
        return settings.worker_device
    gpus = Path("/proc/driver/nvidia/gpus")
    return "cuda" if gpus.is_dir() and any(gpus.iterdir()) else "cpu"


def register(celery: Celery, settings: Settings) -> None:
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    notifier = make_notifier(settings.redis_url)
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    dispatcher = Dispatcher(settings)
    supervisor = Supervisor(
        settings, sessions, notifier, Storage(settings.artifacts_dir), worker_id, dispatcher
    )
    stopping = threading.Event()
    started_at = utcnow()

    @celery.task(name=TRAIN_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def train(job_id: str) -> None:
        """Train one job: the payload is only its id; the database says what to do."""
        supervisor.run(job_id)
        with sessions() as session:  # a sweep's trial ended: its sweep moves on now
            sweeps.advance_for_job(
                session=session,
                dispatcher=dispatcher,
                notifier=notifier,
                limits=settings,
                job_id=job_id,
            )

    @celery.task(name=JOIN_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def join(job_id: str) -> None:
        """Take a slot in a multi-worker job's gang, if one is open, and train its node."""
        gang.follow(supervisor, job_id)

    def housekeeping() -> None:
        warm_up()  # before the first heartbeat: a worker seen alive starts jobs quickly
        # Every worker runs these; they are idempotent compare-and-sets, so several
        # workers doing them at once only repeat harmless work.
        while not stopping.wait(settings.heartbeat_s):
            try:
                with sessions() as session:
                    workers.heartbeat(
                        session=session,
                        worker_id=worker_id,
                        hostname=socket.gethostname(),
                        device=local_device(settings),
                        job_id=supervisor.current_job,
                        started_at=started_at,
                    )
                with sessions() as session:
                    jobs.reap(
                        session=session, notifier=notifier, max_restarts=settings.max_restarts
                    )
                with sessions() as session:
                    sweeps.advance_running(
                        session=session, dispatcher=dispatcher, notifier=notifier, limits=settings
                    )
                with sessions() as session:
                    jobs.redispatch(
                        session=session,
                        dispatcher=dispatcher,
                        older_than_s=settings.reconcile_after_s,
                    )
            except Exception:  # housekeeping must outlive a database or broker outage
                logger.exception("housekeeping failed; retrying")

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def start_housekeeping(**_: object) -> None:
        threading.Thread(target=housekeeping, name="taas-housekeeping", daemon=True).start()

    @worker_shutting_down.connect(weak=False)  # type: ignore[untyped-decorator]
    def hand_back_running_job(**_: object) -> None:
        # SIGTERM (or SIGINT): Celery's warm shutdown waits for the running task, which
        # now checkpoints its job and hands it back within stop_grace_s. Runs in the signal
        # handler of the main thread, so it only sets a flag the supervisor reads.
        supervisor.request_stop()

    @worker_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def stop_housekeeping(**_: object) -> None:
        stopping.set()
