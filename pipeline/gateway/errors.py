"""How errors reach clients: JSON ``{"error": code, "reason": text}`` with a 4xx/5xx.

Every error a request can cause is answered here; a bug shows as a logged 500,
never as a dropped connection for anyone else.
"""

from __future__ import annotations

import logging
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


def error_response(status: int, code: str, reason: str, **extra: object) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": code, "reason": reason, **extra}),
        content_type="application/json",
        headers={"Retry-After": "1"} if status == 503 else None,
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(exc)
    except (ImstreamError, OSError, KafkaError) as exc:
        response = to_response(exc)
        if response.status >= 500:
            log.warning("%s %s: %r", request.method, request.path, exc)
        return response


def to_response(exc: Exception) -> web.Response:
    if isinstance(exc, CursorExpiredError):
        return error_response(410, "cursor_expired", str(exc), head=exc.head)
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            return error_response(status, code, str(exc))
    if isinstance(exc, ImstreamError) and exc.retriable:
        return error_response(503, "unavailable", str(exc))
    if isinstance(exc, OSError | KafkaError):
        return error_response(503, "unavailable", "a backend is unavailable, retry")
    return error_response(500, "internal", "internal error")


def _http_error(exc: web.HTTPException) -> web.Response:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(413, "too_large", exc.text or "request body too large")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
    return error_response(exc.status, code, exc.reason)
