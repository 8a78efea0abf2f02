"""What every route of the gateway's HTTP API parses and answers alike: JSON
bodies (with a time limit), fields, query integers, 202 and JSON responses."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from pipeline.errors import ValidationError
from pipeline.sdk.producer import Ack

BODY_TIMEOUT = web.AppKey("body_timeout_s", float)
DEFAULT_BODY_TIMEOUT_S = 10.0


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 408 (and the connection closed) for a body that
    does not arrive within GATEWAY_BODY_TIMEOUT_S: a client sending a byte now and
    then holds a connection and a handler for no longer than that."""
    timeout_s = request.config_dict.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S)
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"the request body did not arrive within {timeout_s:g}s"
        ) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    return data


def field(data: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    """``data[name]`` of type ``kind``; absent or null: ``default``, or 400 when the
    field is required (no default)."""
    value = data.get(name)
    if value is None:
        if default is ...:
            raise ValidationError(f"missing field {name!r}")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValidationError(f"field {name!r} must be of type {kind.__name__}")
    return value


def query_int(request: web.Request, name: str, default: int | None, low: int, high: int) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"query parameter {name!r} must be an integer") from None
    if not low <= value <= high:
        raise ValidationError(f"query parameter {name!r} must be between {low} and {high}")
    return value


def accepted(ack: Ack, **extra: Any) -> web.Response:
    body = {
        "event_id": ack.event_id,
        "conversation_id": ack.conversation_id,
        "partition": ack.partition,
        "offset": ack.offset,
        **extra,
    }
    return json_response(body, status=202)


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
