"""Live wake-ups for event streams: Redis pub/sub when configured, else a polling timer.

A notification carries nothing a stream relies on: it only says "look in the table
again". Streams always read events from the database after their cursor, so a lost or
duplicated notification can delay an event by one poll interval but never lose or
repeat one.
"""

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Protocol, Self

import redis
import redis.asyncio as aioredis

logger = logging.getLogger(__name__)


def channel(job_id: str) -> str:
    return f"taas:events:{job_id}"


class Notifier(Protocol):
    def publish(self, job_id: str) -> None: ...


class NoNotifier:
    """Embedded mode: streams poll the table, so there is nobody to tell."""

    def publish(self, job_id: str) -> None:
        return None


class RedisNotifier:
    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def publish(self, job_id: str) -> None:
        try:
            self._client.publish(channel(job_id), b"")
        except redis.RedisError as error:
            # The events are committed; followers still find them at their next poll.
            logger.warning("could not publish events of job %s: %s", job_id, error)


def make_notifier(redis_url: str | None) -> Notifier:
    return RedisNotifier(redis_url) if redis_url else NoNotifier()


class Wakeups:
    """What a stream waits on between reads: a pub/sub message, or at most `poll_s`."""

    def __init__(self, job_id: str, redis_url: str | None, poll_s: float) -> None:
        self._job_id = job_id
        self._poll_s = poll_s
        self._client = aioredis.Redis.from_url(redis_url) if redis_url else None
        self._pubsub: aioredis.client.PubSub | None = None

    async def __aenter__(self) -> Self:
        # Subscribe before the first read, so nothing committed after it goes unannounced.
        if self._client is not None:
            try:
                self._pubsub = self._client.pubsub()
                await self._pubsub.subscribe(channel(self._job_id))
            except aioredis.RedisError as error:
                logger.warning("live events fall back to polling: %s", error)
                self._pubsub = None
        return self

    async def wait(self) -> None:
        if self._pubsub is None:
            await asyncio.sleep(self._poll_s)
            return
        try:
            await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=self._poll_s)
        except aioredis.RedisError:
            await asyncio.sleep(self._poll_s)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(aioredis.RedisError):
            if self._pubsub is not None:
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            if self._client is not None:
                await self._client.aclose()
