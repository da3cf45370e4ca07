"""Limits that keep one client from taking the service down: request bodies and rates.

Bodies are counted as they stream in, before anything buffers them, so a client cannot
make the API hold more than the limit in memory or on disk. Rates are a token bucket per
tenant: in Redis when it is configured (shared by every API process), else in this process.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Final, Protocol

import redis
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import RateLimited

logger = logging.getLogger(__name__)

# A multipart upload may carry two files at the upload limit (IDX images and labels) plus
# its form fields and part headers.
UPLOAD_FILES_MAX: Final = 2
MULTIPART_OVERHEAD_BYTES: Final = 64 * 1024
# Caps for multipart parsing: our uploads have at most 3 files and 6 short form fields.
FORM_FIELDS_MAX: Final = 16
FORM_FILES_MAX: Final = 4
FORM_FIELD_BYTES_MAX: Final = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from the body stream: an HTTPException, so FastAPI's body reading lets it by."""

    def __init__(self, code: str, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")
        self.code, self.limit = code, limit

    def body(self) -> dict[str, dict[str, object]]:
        return {"error": {"code": self.code, "message": self.detail, "details": []}}


class BodyLimit:
    """Answer 413 to a body over its limit: at once from Content-Length, else as it streams."""

    def __init__(self, app: ASGIApp, *, json_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes * UPLOAD_FILES_MAX + MULTIPART_OVERHEAD_BYTES

    def limit_of(self, scope: Scope) -> BodyTooLarge:
        headers = dict(scope["headers"])
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
            return BodyTooLarge("upload_too_large", self.upload_bytes)
        return BodyTooLarge("body_too_large", self.json_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = self.limit_of(scope)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > too_large.limit:
            await JSONResponse(too_large.body(), status_code=413)(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > too_large.limit:
                    raise too_large
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if started:
                raise
            await JSONResponse(too_large.body(), status_code=413)(scope, receive, send)


class RateLimiter(Protocol):
    def take(self, tenant: str) -> float:
        """Spend one request of the tenant's; 0, or the seconds until one is available."""
        ...


@dataclass
class Bucket:
    tokens: float
    at: float


@dataclass
class LocalRateLimiter:
    """Token buckets in this process: right for the embedded mode's one API process."""

    rate_per_s: float
    burst: int
    buckets: dict[str, Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, tenant: str) -> float:
        now = time.monotonic()
        with self.lock:
            bucket = self.buckets.setdefault(tenant, Bucket(float(self.burst), now))
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate_per_s


# One round trip, atomic in Redis, on Redis's clock so API processes on several hosts agree.
TAKE_SCRIPT: Final = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    """Token buckets in Redis, shared by every API process of the full stack."""

    def __init__(self, url: str, namespace: str, rate_per_s: float, burst: int) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(TAKE_SCRIPT)
        self._namespace, self._rate, self._burst = namespace, rate_per_s, burst

    def take(self, tenant: str) -> float:
        try:
            wait = self._script(
                keys=[f"{self._namespace}:rate:{tenant}"], args=[self._rate, self._burst]
            )
        except redis.RedisError as error:
            # A Redis outage must not take the API down with it: let the request through.
            logger.warning("rate limit unavailable: %s", error)
            return 0.0
        return float(wait)


def check_rate(limiter: RateLimiter, tenant: str) -> None:
    """RateLimited (429 with Retry-After) when the tenant has spent its requests."""
    wait = limiter.take(tenant)
    if wait > 0:
        raise RateLimited(
            f"tenant {tenant!r} is over its request rate; retry in {math.ceil(wait)} s", wait
        )
