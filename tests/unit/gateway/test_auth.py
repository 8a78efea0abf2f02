from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import jwt
import pytest

from pipeline.errors import AuthError, ConfigError, ValidationError
from pipeline.gateway import auth
from pipeline.gateway.app import check_secret
from pipeline.settings import Settings

SECRET = "k" * 32
OTHER = "o" * 32


def test_a_token_names_its_user_and_device() -> None:
    token = auth.issue(SECRET, "alice", "phone", ttl_s=60, now_s=1000)
    who = auth.verify(SECRET, token, now_s=1030)
    assert (who.user_id, who.device_id, who.expires_s) == ("alice", "phone", 1060)
    # a standard JWT: any library reads it
    assert jwt.get_unverified_header(token) == {
        "alg": "HS256",
        "typ": "JWT",
        "kid": auth.key_id(SECRET),
    }
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sub": "alice", "dev": "phone", "iat": 1000, "exp": 1060}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing token"),
        ("", "missing token"),
        ("no-dot", "malformed token"),
        (".sig", "malformed token"),
        ("e30.", "malformed token"),
        ("e30.e30.", "unknown key id"),  # {} header: no kid
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str | None, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        auth.verify(SECRET, token)


def test_forged_and_expired_tokens_are_refused() -> None:
    # signed with another key, under its own key id or claiming ours
    with pytest.raises(AuthError, match="unknown key id"):
        auth.verify(SECRET, auth.issue(OTHER, "alice", "phone", ttl_s=60))
    claims = {"sub": "alice", "dev": "phone", "exp": int(time.time()) + 60}
    forged = jwt.encode(claims, OTHER, algorithm="HS256", headers={"kid": auth.key_id(SECRET)})
    with pytest.raises(AuthError, match="invalid token signature"):
        auth.verify(SECRET, forged)
    # another user's claims under a real signature
    head, _, signature = auth.issue(SECRET, "alice", "phone", ttl_s=60).rpartition(".")
    tampered = auth.issue(SECRET, "mallory", "phone", ttl_s=60).rpartition(".")[0]
    with pytest.raises(AuthError, match="invalid token signature"):
        auth.verify(SECRET, tampered + "." + signature)
    assert auth.verify(SECRET, head + "." + signature).user_id == "alice"
    old = auth.issue(SECRET, "alice", "phone", ttl_s=60, now_s=1000)
    with pytest.raises(AuthError, match="token expired"):
        auth.verify(SECRET, old, now_s=1061)


def test_only_hs256_is_accepted() -> None:
    claims = {"sub": "alice", "dev": "phone", "exp": int(time.time()) + 60}
    kid = {"kid": auth.key_id(SECRET)}
    unsigned = jwt.encode(claims, None, algorithm="none", headers=kid)
    stronger = jwt.encode(claims, SECRET * 2, algorithm="HS512", headers=kid)
    for token in (unsigned, stronger):
        with pytest.raises(AuthError, match="algorithm not allowed"):
            auth.verify(SECRET, token)


def test_a_rotation_keeps_the_old_keys_tokens_until_they_are_dropped() -> None:
    before = auth.issue(SECRET, "alice", "phone", ttl_s=60)
    rotated = auth.Keys.from_setting(OTHER, f" {SECRET} ,")
    after = auth.issue(rotated, "alice", "laptop", ttl_s=60)
    assert jwt.get_unverified_header(after)["kid"] == auth.key_id(OTHER)  # signs with the new
    assert auth.verify(rotated, before).device_id == "phone"
    assert auth.verify(rotated, after).device_id == "laptop"
    with pytest.raises(AuthError, match="unknown key id"):
        auth.verify(auth.Keys.of(OTHER), before)  # the old key dropped


@pytest.mark.parametrize(
    "claims",
    [
        {"dev": "phone"},
        {"sub": "alice"},
        {"sub": "has space", "dev": "phone"},
        {"sub": ["alice"], "dev": "phone"},
        {"sub": "alice", "dev": "phone", "exp": "soon"},
    ],
)
def test_claims_that_do_not_name_a_user_and_device_are_refused(claims: dict[str, Any]) -> None:
    token = jwt.encode(
        {"exp": int(time.time()) + 60, **claims},
        SECRET,
        algorithm="HS256",
        headers={"kid": auth.key_id(SECRET)},
    )
    with pytest.raises(AuthError, match="malformed token"):
        auth.verify(SECRET, token)


def test_tokens_only_for_valid_ids() -> None:
    with pytest.raises(ValidationError, match="user id"):
        auth.issue(SECRET, "has space", "phone", ttl_s=60)


def test_the_development_secret_stays_on_loopback() -> None:
    settings = Settings.from_env({})
    check_secret(settings)  # 127.0.0.1 with the default secret: fine for local use
    public = settings.replace(gateway=replace(settings.gateway, host="0.0.0.0"))
    with pytest.raises(ConfigError, match="development default"):
        check_secret(public)
    check_secret(public.replace(gateway=replace(public.gateway, auth_secret="k" * 32)))


@pytest.mark.parametrize("secret", ["", "short", "k" * 31, "é" * 15])
def test_a_secret_of_ones_own_has_at_least_32_bytes(secret: str) -> None:
    settings = Settings.from_env({})
    for host in ("127.0.0.1", "0.0.0.0"):
        chosen = settings.replace(gateway=replace(settings.gateway, host=host, auth_secret=secret))
        with pytest.raises(ConfigError, match="at least 32 bytes"):
            check_secret(chosen)
