"""The worker's Celery app: the API's client settings plus the consumer's, each with its reason.

The broker is only a doorbell: a message says "job X may be queued", the database's
compare-and-set claim decides whether this worker runs it, and the lease, not the
message, keeps it running here. So every delivery guarantee Celery lacks (a message lost
in a Redis restart, redelivered after the visibility timeout, delivered twice) is made up
for by the claim (duplicates do nothing) and the reconciler (lost doorbells ring again).
"""

from celery import Celery

from app.broker import celery_client
from app.config import Settings


def create_celery(settings: Settings) -> Celery:
    celery = celery_client(settings)
    celery.conf.update(
        # Ack after the task returns. Not for redelivery (the database re-queues a lost
        # worker's job, and a redelivered doorbell finds it claimed), but because an
        # unacknowledged task fills the prefetch window: with early acks a busy worker
        # would reserve the next doorbell while other workers sit idle.
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
        # A broker restart must not end the worker: reconnect for as long as it takes (the
        # running job needs only the database) ...
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        # ... and must not cancel the running task either: its lease says whether it runs.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # A job outliving the visibility timeout is redelivered to another worker, whose
        # claim finds it running and does nothing; long, so that this is rare.
        broker_transport_options=(
            {"visibility_timeout": settings.broker_visibility_timeout_s}
            if settings.redis_url
            else {}
        ),
    )
    from worker import tasks  # registers the train task on this app

    tasks.register(celery, settings)
    return celery
