"""The body limit stops reading a body at the limit, before anything has buffered it all;
the in-process token bucket refills at its rate."""

import asyncio
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from app.limits import BodyLimit, LocalRateLimiter

CHUNK = 1000


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    body = await Request(scope, receive).body()
    await JSONResponse({"bytes": len(body)})(scope, receive, send)


def post(limit: BodyLimit, chunks: int, headers: list[tuple[bytes, bytes]]) -> tuple[int, Any, int]:
    """(status, body, chunks the app pulled) for a body sent as `chunks` pieces."""
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": pulled < chunks}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    asyncio.run(limit(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), pulled


def test_a_body_over_the_limit_is_refused_after_reading_just_past_it() -> None:
    limit = BodyLimit(echo_length, json_bytes=5 * CHUNK, upload_bytes=10**9)

    status, body, pulled = post(limit, chunks=1000, headers=[])

    assert status == 413
    assert body["error"]["code"] == "body_too_large"
    assert pulled == 6


def test_a_declared_length_over_the_limit_is_refused_before_reading_anything() -> None:
    limit = BodyLimit(echo_length, json_bytes=5 * CHUNK, upload_bytes=10**9)

    status, _, pulled = post(limit, chunks=1000, headers=[(b"content-length", b"1000000")])

    assert (status, pulled) == (413, 0)


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    limit = BodyLimit(echo_length, json_bytes=5 * CHUNK, upload_bytes=10**9)

    assert post(limit, chunks=5, headers=[]) == (200, {"bytes": 5 * CHUNK}, 5)


def test_uploads_have_their_own_larger_limit() -> None:
    limit = BodyLimit(echo_length, json_bytes=CHUNK, upload_bytes=10 * CHUNK)
    multipart = [(b"content-type", b"multipart/form-data; boundary=x")]

    assert post(limit, chunks=5, headers=multipart)[0] == 200
    status, body, _ = post(limit, chunks=1000, headers=multipart)
    assert (status, body["error"]["code"]) == (413, "upload_too_large")


def test_the_local_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    bucket = LocalRateLimiter(rate_per_s=20.0, burst=2)

    assert [bucket.take("a") for _ in range(2)] == [0.0, 0.0]
    wait = bucket.take("a")
    assert 0 < wait <= 1 / 20
    assert bucket.take("b") == 0.0  # buckets are per tenant
    time.sleep(wait + 0.02)
    assert bucket.take("a") == 0.0
