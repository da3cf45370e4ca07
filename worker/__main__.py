"""`python -m worker`: one Celery worker that trains one job at a time (`taas worker`)."""

import os
import socket
import sys

from app.broker import device_queue
from app.config import get_settings
from worker.celery_app import create_celery
from worker.tasks import local_device


def main(argv: list[str]) -> None:
    settings = get_settings()
    if settings.worker_device == "cpu":
        # The trainers inherit this: a CPU worker's `auto` job never lands on a GPU that
        # the host happens to show this container.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    queues = [device_queue(settings, "auto"), device_queue(settings, local_device(settings))]
    celery = create_celery(settings)
    celery.worker_main(
        [
            "worker",
            # The task only supervises a child process, so the solo pool is enough, and
            # one job per worker is the unit of scheduling (one worker per GPU).
            "--pool=solo",
            "--concurrency=1",
            f"--queues={','.join(queues)}",
            f"--hostname=taas-{socket.gethostname()}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
            *argv,
        ]
    )


if __name__ == "__main__":
    main(sys.argv[1:])
