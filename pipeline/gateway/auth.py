"""Signed tokens naming a user and a device.

A token is ``<payload>.<signature>``, both base64url without padding: the
payload is JSON ``{"u": user, "d": device, "exp": unix seconds}``, the
signature HMAC-SHA256 of the payload with the gateway's secret
(``IMSTREAM_GATEWAY_AUTH_SECRET``). ``imstream token <user> <device>`` issues
one for local use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson

from pipeline.errors import AuthError, ValidationError
from pipeline.model.events import ID_PATTERN, MAX_ID_CHARS


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    device_id: str
    expires_s: int


def issue(secret: str, user_id: str, device_id: str, ttl_s: int, now_s: float | None = None) -> str:
    for name, value in (("user", user_id), ("device", device_id)):
        if not (0 < len(value) <= MAX_ID_CHARS and ID_PATTERN.fullmatch(value)):
            raise ValidationError(
                f"{name} id {value!r} must be 1-{MAX_ID_CHARS} of [A-Za-z0-9._:@+-]"
            )
    expires = int((time.time() if now_s is None else now_s) + ttl_s)
    payload = _b64(orjson.dumps({"u": user_id, "d": device_id, "exp": expires}))
    return f"{payload}.{_sign(secret, payload)}"


def verify(secret: str, token: str | None, now_s: float | None = None) -> Identity:
    if not token:
        raise AuthError("missing token: send 'Authorization: Bearer <token>'")
    payload, dot, signature = token.partition(".")
    if not dot or not payload or not signature:
        raise AuthError("malformed token")
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise AuthError("invalid token signature")
    try:
        claims = orjson.loads(_unb64(payload))
        identity = Identity(str(claims["u"]), str(claims["d"]), int(claims["exp"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise AuthError("malformed token") from None
    if identity.expires_s < (time.time() if now_s is None else now_s):
        raise AuthError("token expired")
    return identity


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
