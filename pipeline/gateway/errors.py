"""How errors reach clients: JSON ``{"error": code, "reason": text}`` with a 4xx/5xx.

Every error a request can cause is answered here; a bug shows as a logged 500,
never as a dropped connection for anyone else. A 4xx says what was wrong with the
request. A 5xx says only "backend unavailable, retry" (or "internal error") and
a ``request_id`` (also the ``X-Request-Id`` header): what went wrong, with the
hosts and the drivers' words, goes to the log under that id, never to clients.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from pipeline.errors import (
    AccessDeniedError,
    AuthError,
    CursorExpiredError,
    EventError,
    ImstreamError,
    RateLimitedError,
    RejectedError,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS: list[tuple[type[ImstreamError], int, str]] = [
    (AuthError, 401, "unauthorized"),
    (AccessDeniedError, 403, "forbidden"),
    (RejectedError, 409, "conflict"),
    (EventError, 400, "invalid_request"),
]


UNAVAILABLE = "backend unavailable, retry"


def error_response(status: int, code: str, reason: str, **extra: object) -> web.Response:
    headers = {"Retry-After": "1"} if status == 503 else {}
    if "request_id" in extra:
        headers["X-Request-Id"] = str(extra["request_id"])
    return web.Response(
        status=status,
        body=orjson.dumps({"error": code, "reason": reason, **extra}),
        content_type="application/json",
        headers=headers or None,
    )


LIMITED_DELAY = web.AppKey("limited_delay_s", float)
"""The longest a 429 waits before it is sent (GATEWAY_LIMITED_DELAY_S)."""


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(exc)
    except (ImstreamError, OSError, KafkaError) as exc:
        request_id = new_request_id()
        response = to_response(exc, request_id)
        if isinstance(exc, RateLimitedError):
            # a client that ignores Retry-After asks again at once: answering it at
            # once would let it spend the gateway's CPU on refusals (bench/flood.py)
            await asyncio.sleep(min(exc.retry_after_s, request.app.get(LIMITED_DELAY, 0.0)))
        if response.status >= 500:
            log.warning("%s %s (request %s): %r", request.method, request.path, request_id, exc)
        return response


def to_response(exc: Exception, request_id: str) -> web.Response:
    """The answer to ``exc``; a 5xx names ``request_id``, which the log has too."""
    if isinstance(exc, CursorExpiredError):
        return error_response(410, "cursor_expired", str(exc), head=exc.head)
    if isinstance(exc, RateLimitedError):
        response = error_response(429, "rate_limited", str(exc))
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            return error_response(status, code, str(exc))
    if (isinstance(exc, ImstreamError) and exc.retriable) or isinstance(exc, OSError | KafkaError):
        return error_response(503, "unavailable", UNAVAILABLE, request_id=request_id)
    return error_response(500, "internal", "internal error", request_id=request_id)


def _http_error(exc: web.HTTPException) -> web.Response:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(413, "too_large", exc.text or "request body too large")
    code = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout"}.get(
        exc.status, "http_error"
    )
    response = error_response(
        exc.status, code, (exc.text or "") if exc.status == 408 else exc.reason
    )
    if exc.status == 408:  # the rest of a slow body is not waited for
        response.force_close()
    if "Allow" in exc.headers:  # a 405 says which methods the path has (RFC 9110)
        response.headers["Allow"] = exc.headers["Allow"]
    return response
