"""Live wake-ups for event streams: Redis pub/sub when configured, else a polling timer.

A notification carries nothing a stream relies on: it only says "look in the table
again". Streams always read events from the database after their cursor, so a lost or
duplicated notification can delay an event by one poll interval but never lose or
repeat one.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

import redis
import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

logger = logging.getLogger(__name__)


# A waiting stream re-reads the table at least this many poll intervals apart, whatever
# the watch says: a safety net, not the path events take.
WATCH_TIMEOUT_POLLS = 8


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


@dataclass
class _Watched:
    last_seq: int = -1
    streams: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    poller: asyncio.Task[None] | None = None


class SeqWatch:
    """Without Redis: one poll of a job's newest seq per interval for all of this process's
    streams of that job, instead of one full read per stream. Ten subscribers then cost
    what one does, and none of them reads the events table until something was appended."""

    def __init__(self, newest_seq: Callable[[str], int | None], poll_s: float) -> None:
        self._newest_seq = newest_seq
        self._poll_s = poll_s
        self._jobs: dict[str, _Watched] = {}

    async def beyond(self, job_id: str, seq: int) -> None:
        """Return once the job's newest seq exceeds `seq`, or after a few poll intervals."""
        watched = self._jobs.setdefault(job_id, _Watched())
        watched.streams += 1
        if watched.poller is None:
            watched.poller = asyncio.create_task(self._poll(job_id, watched))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s * WATCH_TIMEOUT_POLLS):
                    while watched.last_seq <= seq:
                        watched.changed.clear()
                        await watched.changed.wait()
        finally:
            watched.streams -= 1
            if watched.streams == 0:
                watched.poller.cancel()
                del self._jobs[job_id]

    async def _poll(self, job_id: str, watched: _Watched) -> None:
        while True:
            newest = await run_in_threadpool(self._newest_seq, job_id)
            if newest is not None and newest != watched.last_seq:
                watched.last_seq = newest
                watched.changed.set()
            await asyncio.sleep(self._poll_s)


class Wakeups:
    """What a stream waits on between reads: a pub/sub message, or the shared seq watch."""

    def __init__(self, job_id: str, redis_url: str | None, poll_s: float, watch: SeqWatch) -> None:
        self._job_id = job_id
        self._poll_s = poll_s
        self._watch = watch
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

    async def wait(self, seen_seq: int) -> None:
        """Until there may be events after `seen_seq`."""
        if self._pubsub is None:
            await self._watch.beyond(self._job_id, seen_seq)
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
