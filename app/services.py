"""Building everything the API process needs once, from its Settings."""

from functools import partial

from app.broker import Dispatcher
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.deps import Services
from app.events import service as events
from app.events.notify import SeqWatch, make_notifier
from app.keys import service as keys
from app.limits import LocalRateLimiter, RateLimiter, RedisRateLimiter
from app.storage import Storage


def make_rate_limiter(settings: Settings) -> RateLimiter:
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url, settings.task_queue, settings.rate_per_s, settings.rate_burst
        )
    return LocalRateLimiter(settings.rate_per_s, settings.rate_burst)


def build_services(settings: Settings) -> Services:
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        seq_watch=SeqWatch(partial(events.newest_seq, sessions), settings.event_poll_s),
        storage=Storage(settings.artifacts_dir),
        dispatcher=Dispatcher(settings),
        notifier=make_notifier(settings.redis_url),
        secrets=keys.server_secrets(settings),
        rate_limiter=make_rate_limiter(settings),
    )
