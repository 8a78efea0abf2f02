"""Signed tokens naming a user and a device: JWTs (PyJWT), HS256 only.

The claims are ``sub`` (the user), ``dev`` (the device), ``iat`` and ``exp`` (unix
seconds). The header's ``kid`` names the key that signed it: the first 16 hex
digits of the key's SHA-256, so a key needs no name of its own and the id gives
nothing of it away.

The gateway signs with ``IMSTREAM_GATEWAY_AUTH_SECRET`` and accepts tokens signed
with it or with any of ``IMSTREAM_GATEWAY_AUTH_OLD_SECRETS`` (comma-separated).
To rotate a key, move the current secret to the old ones and set a new one. Once
the old one's tokens have expired (``IMSTREAM_GATEWAY_TOKEN_TTL_S``), drop it.
Only HS256 is accepted: a token naming another algorithm (``none`` among them)
is refused. ``imstream token <user> <device>`` issues one for local use.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from pipeline.errors import AuthError, ValidationError
from pipeline.model.events import ID_PATTERN, MAX_ID_CHARS

ALGORITHMS = ["HS256"]  # the allow-list: nothing else is ever verified


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    device_id: str
    expires_s: int


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Keys:
    """The secret tokens are signed with, and every secret they are accepted from."""

    signing: str
    accepted: dict[str, str]  # key id -> secret

    @classmethod
    def of(cls, secret: str, old: Sequence[str] = ()) -> Keys:
        return cls(secret, {key_id(s): s for s in (secret, *old) if s})

    @classmethod
    def from_setting(cls, secret: str, old_secrets: str) -> Keys:
        """From the settings: the old secrets are comma-separated."""
        return cls.of(secret, [s.strip() for s in old_secrets.split(",") if s.strip()])


def _keys(keys: Keys | str) -> Keys:
    return keys if isinstance(keys, Keys) else Keys.of(keys)


def issue(
    keys: Keys | str, user_id: str, device_id: str, ttl_s: int, now_s: float | None = None
) -> str:
    for name, value in (("user", user_id), ("device", device_id)):
        if not _valid_id(value):
            raise ValidationError(
                f"{name} id {value!r} must be 1-{MAX_ID_CHARS} of [A-Za-z0-9._:@+-]"
            )
    signing = _keys(keys).signing
    now = int(time.time() if now_s is None else now_s)
    claims = {"sub": user_id, "dev": device_id, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, signing, algorithm="HS256", headers={"kid": key_id(signing)})


def verify(keys: Keys | str, token: str | None, now_s: float | None = None) -> Identity:
    if not token:
        raise AuthError("missing token: send 'Authorization: Bearer <token>'")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError("malformed token") from None
    kid = header.get("kid")
    secret = _keys(keys).accepted.get(kid) if isinstance(kid, str) else None
    if secret is None:
        raise AuthError("unknown key id: the token was not signed by this gateway's keys")
    try:
        # expiry is checked below, against now_s (the tests' clock) like the rest
        claims = jwt.decode(
            token, secret, algorithms=ALGORITHMS, options={"verify_exp": False, "verify_iat": False}
        )
    except jwt.InvalidAlgorithmError:
        raise AuthError(f"token algorithm not allowed (only {', '.join(ALGORITHMS)})") from None
    except jwt.InvalidSignatureError:
        raise AuthError("invalid token signature") from None
    except jwt.InvalidTokenError:
        raise AuthError("malformed token") from None
    user, device, expires = claims.get("sub"), claims.get("dev"), claims.get("exp")
    if not (_valid_id(user) and _valid_id(device) and type(expires) is int):
        raise AuthError("malformed token")
    if expires < (time.time() if now_s is None else now_s):
        raise AuthError("token expired")
    return Identity(user, device, expires)  # type: ignore[arg-type]


def _valid_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_CHARS
        and bool(ID_PATTERN.fullmatch(value))
    )
