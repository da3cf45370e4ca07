"""The worker's Celery app: the API's client settings plus the consumer's, each with its reason."""

from celery import Celery

from app.broker import celery_client
from app.config import Settings

# Longer than any doorbell should wait unacknowledged in Redis before redelivery. A job
# outliving it is redelivered to another worker, whose claim then finds it running and
# does nothing: the database, not the broker, decides what runs.
REDIS_VISIBILITY_TIMEOUT_S = 3600


def create_celery(settings: Settings) -> Celery:
    celery = celery_client(settings)
    celery.conf.update(
        # Ack after the task returns: a worker that dies before claiming leaves the doorbell
        # for another worker. Redelivery is harmless because the claim is a compare-and-set.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One doorbell at a time: a busy worker must not hold the next job while others idle.
        worker_prefetch_multiplier=1,
        # No time limits from Celery: a job's own runtime limit belongs to the supervisor.
        task_time_limit=None,
        task_soft_time_limit=None,
        # Workers need no broadcast commands (and the SQLAlchemy transport has no fanout).
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        broker_transport_options=(
            {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S} if settings.redis_url else {}
        ),
    )
    from worker import tasks  # registers the train task on this app

    tasks.register(celery, settings)
    return celery
