from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.errors import AuthError, ConfigError, ValidationError
from pipeline.gateway import auth
from pipeline.gateway.app import check_secret
from pipeline.settings import Settings


def test_a_token_names_its_user_and_device() -> None:
    token = auth.issue("s3cret", "alice", "phone", ttl_s=60, now_s=1000)
    who = auth.verify("s3cret", token, now_s=1030)
    assert (who.user_id, who.device_id, who.expires_s) == ("alice", "phone", 1060)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing token"),
        ("", "missing token"),
        ("no-dot", "malformed token"),
        (".sig", "malformed token"),
        ("e30.", "malformed token"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str | None, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        auth.verify("s3cret", token)


def test_forged_and_expired_tokens_are_refused() -> None:
    forged = auth.issue("other", "alice", "phone", ttl_s=60)
    with pytest.raises(AuthError, match="invalid token signature"):
        auth.verify("s3cret", forged)
    signature = auth.issue("s3cret", "alice", "phone", ttl_s=60).partition(".")[2]
    tampered = auth.issue("s3cret", "mallory", "phone", ttl_s=60).split(".")[0] + "." + signature
    with pytest.raises(AuthError, match="invalid token signature"):
        auth.verify("s3cret", tampered)
    old = auth.issue("s3cret", "alice", "phone", ttl_s=60, now_s=1000)
    with pytest.raises(AuthError, match="token expired"):
        auth.verify("s3cret", old, now_s=1061)


def test_tokens_only_for_valid_ids() -> None:
    with pytest.raises(ValidationError, match="user id"):
        auth.issue("s3cret", "has space", "phone", ttl_s=60)


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
