"""The broker as the API sees it: a doorbell that says "job X is queued".

The API sends tasks by name and never imports the worker. The worker's Celery app starts
from `celery_client` and adds the consumer-side settings (worker/celery_app.py).
"""

import logging

from celery import Celery

from app.config import Settings

logger = logging.getLogger(__name__)

TRAIN_TASK = "train.job"
# "Join the gang of job X": rung by a multi-worker job's node 0, once per other node.
JOIN_TASK = "train.join"
# A doorbell older than this is pointless: the reconciler rings again for jobs still queued.
DOORBELL_EXPIRES_S = 24 * 3600


def celery_client(settings: Settings) -> Celery:
    celery = Celery("taas", broker=settings.broker_url, set_main=False)
    celery.conf.update(
        # Payloads are ids; JSON only, so nothing from the broker is ever unpickled.
        task_serializer="json",
        accept_content=["json"],
        # Job state and results live in the database; Celery keeps none.
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=f"{settings.task_queue}.auto",
        # Give up quickly when the broker is down: the job is already stored, and the
        # reconciler re-sends it, so a submit must not hang on a dead broker.
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2},
    )
    return celery


def device_queue(settings: Settings, device: str) -> str:
    """One queue per device a job asks for: GPU workers consume `cuda` and `auto`, CPU
    workers `cpu` and `auto`, so a job never lands on a worker that cannot run it."""
    return f"{settings.task_queue}.{device}"


class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self._celery = celery_client(settings)
        self._settings = settings

    def send(self, job_id: str, device: str = "auto", task: str = TRAIN_TASK) -> None:
        queue = device_queue(self._settings, device)
        self._celery.send_task(task, args=[job_id], queue=queue, expires=DOORBELL_EXPIRES_S)

    def try_send(self, job_id: str, device: str = "auto", task: str = TRAIN_TASK) -> bool:
        try:
            self.send(job_id, device, task)
        except Exception as error:  # kombu raises many kinds; none may fail a stored submit
            logger.warning(
                "could not dispatch job %s (the reconciler will retry): %s", job_id, error
            )
            return False
        return True
