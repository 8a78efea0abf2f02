"""The gateway refuses what it must, clearly, and never drops other users for it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from pipeline.errors import AuthError
from pipeline.gateway import auth
from pipeline.sdk.client import TOKEN_EXPIRED_CLOSE, ApiClient, ApiError, SyncClient
from pipeline.settings import Settings
from tests.support import eventually, gateway_process, running_worker, token


async def status_of(
    http: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, dict[str, Any]]:
    async with http.request(method, url, **kw) as response:
        return response.status, await response.json(content_type=None)


async def test_tokens_membership_and_bad_input(settings: Settings, tmp_path: Path) -> None:
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice = ApiClient(gw.url, token(gw.settings, "alice", "phone"), http)
        await alice.create_group("team", ["bob"])
        await alice.create_group("secret", [])
        mallory = ApiClient(gw.url, token(gw.settings, "mallory", "pc"), http)

        async def stored() -> bool:
            try:
                await alice.call("GET", "/v1/conversations/secret")
            except ApiError:
                return False
            return True

        await eventually(stored, bool, within=30)

        # tokens: missing, malformed, forged, expired
        assert (await status_of(http, "GET", gw.url + "/v1/sync"))[0] == 401
        bad = {"Authorization": "Bearer not-a-token"}
        code, body = await status_of(http, "GET", gw.url + "/v1/sync", headers=bad)
        assert (code, body["error"], body["reason"]) == (401, "unauthorized", "malformed token")
        # forged: signed with another key, under its own key id and under the gateway's
        other = "another secret, long enough: 32+"
        kid = {"kid": auth.key_id(gw.settings.gateway.auth_secret)}
        claims = {"sub": "alice", "dev": "phone", "exp": int(time.time()) + 60}
        for forged, reason in (
            (auth.issue(other, "alice", "phone", 3600), "unknown key id"),
            (jwt.encode(claims, other, algorithm="HS256", headers=kid), "invalid token signature"),
            (jwt.encode(claims, None, algorithm="none", headers=kid), "algorithm not allowed"),
        ):
            code, body = await status_of(
                http, "GET", gw.url + "/v1/sync", headers={"Authorization": f"Bearer {forged}"}
            )
            assert code == 401
            assert reason in body["reason"]
        expired = token(gw.settings, "alice", "phone", ttl=-10)
        code, body = await status_of(
            http, "GET", gw.url + "/v1/sync", headers={"Authorization": f"Bearer {expired}"}
        )
        assert (code, body["reason"]) == (401, "token expired")
        # a token in the URL (it ends up in access logs) only on the WebSocket upgrade
        valid = token(gw.settings, "alice", "phone")
        code, body = await status_of(http, "GET", gw.url + f"/v1/sync?token={valid}")
        assert code == 401
        assert "a token in the URL is accepted only on /v1/stream" in body["reason"]

        # a conversation you are not in: no history, no sends, no members
        for call in (
            mallory.history("secret"),
            mallory.send("secret", "hi"),
            mallory.join("secret", "mallory"),
            mallory.call("GET", "/v1/conversations/secret"),
        ):
            with pytest.raises(ApiError) as denied:
                await call
            assert denied.value.status == 403
            assert "mallory is not a member of conversation secret" in denied.value.reason
        # another device's cursor is not yours to move
        with pytest.raises(ApiError) as other:
            await mallory.ack("phone", 5)
        assert other.value.status == 403
        # taken ids
        with pytest.raises(ApiError) as taken:
            await alice.create_group("team", ["carol"])
        assert (taken.value.status, taken.value.error) == (409, "conflict")
        # nobody squats a direct conversation: dm: ids are for POST /v1/direct only,
        # refused before telling whether the id exists
        with pytest.raises(ApiError) as squat:
            await mallory.create_group("dm:alice:zed", ["alice", "zed"])
        assert (squat.value.status, squat.value.error) == (400, "invalid_request")
        assert "reserved for direct conversations" in squat.value.reason
        assert (await alice.create_direct("zed"))["conversation_id"] == "dm:alice:zed"

        headers = {"Authorization": f"Bearer {token(gw.settings, 'alice', 'phone')}"}
        send = gw.url + "/v1/conversations/team/messages"
        cases = [
            (b"{not json", 400, "not valid JSON"),
            (b"[1, 2]", 400, "must be a JSON object"),
            (b'{"body": 42}', 400, "'body' must be of type str"),
            (b'{"text": "hi"}', 400, "missing field 'body'"),
            (b'{"body": "hi", "client_msg_id": ["x"]}', 400, "'client_msg_id' must be"),
            (b'{"body": ""}', 400, "must not be empty"),
            (b'{"body": "' + b"x" * 40_000 + b'"}', 400, "larger than"),
            (b'{"body": "' + b"x" * 70_000 + b'"}', 413, ""),
        ]
        for raw, want, reason in cases:
            code, body = await status_of(http, "POST", send, data=raw, headers=headers)
            assert code == want, (raw[:40], body)
            assert reason in body["reason"]
        for path, want in (
            ("/v1/sync?after=-1", 400),
            ("/v1/sync?limit=abc", 400),
            ("/v1/conversations/team/messages?before=0", 400),
            ("/v1/nowhere", 404),
        ):
            code, body = await status_of(http, "GET", gw.url + path, headers=headers)
            assert code == want, (path, body)
            assert body["reason"]
        code, body = await status_of(
            http,
            "POST",
            gw.url + "/v1/conversations",
            data=b'{"conversation_id": "x", "members": [{"a": 1}]}',
            headers=headers,
        )
        assert (code, body["error"]) == (400, "invalid_request")
        spec = await (await http.get(gw.url + "/openapi.json")).json()
        assert "/v1/sync" in spec["paths"]


async def test_websocket_refusals_and_garbage_frames(settings: Settings, tmp_path: Path) -> None:
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(gw.url + "/v1/stream")
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as forged:
            await http.ws_connect(
                gw.url + "/v1/stream", params={"token": auth.issue("x" * 32, "bob", "p", 60)}
            )
        assert forged.value.status == 401

        # a device sending garbage gets error frames and stays connected;
        # another user's device is not disturbed
        alice = ApiClient(gw.url, token(gw.settings, "alice", "phone"), http)
        await alice.create_group("team", ["bob"])
        stopping = asyncio.Event()
        bob = SyncClient(gw.url, token(gw.settings, "bob", "phone"), "phone")
        task = asyncio.create_task(bob.run(stopping))
        await asyncio.wait_for(bob.connected.wait(), 30)
        ws = await http.ws_connect(
            gw.url + "/v1/stream", params={"token": token(gw.settings, "carol", "pc")}
        )
        assert (await ws.receive_json())["type"] == "hello"
        for junk in ("{nope", '{"type": "ack", "cursor": "x"}', '["ack"]', "x" * 3000):
            await ws.send_str(junk)
            frame = await ws.receive_json(timeout=10)
            assert frame["type"] == "error"
            assert frame["reason"]
        await ws.send_str('{"type": "ack", "cursor": 0}')
        await alice.send("team", "still fine")
        await eventually(lambda: _has(bob, "still fine"), bool, within=30)
        assert not ws.closed
        await ws.close()
        stopping.set()
        await task


async def _has(client: SyncClient, body: str) -> bool:
    return any(e["body"] == body for e in client.entries)


async def test_a_socket_is_closed_when_its_token_expires(
    settings: Settings, tmp_path: Path
) -> None:
    """No socket outlives its token: closed with 4001 and a reason; the reference
    client stops with AuthError instead of reconnecting with a dead token."""
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(
            gw.url + "/v1/stream", params={"token": token(gw.settings, "carol", "pc", ttl=2)}
        )
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        while (message := await ws.receive(timeout=30)).type == aiohttp.WSMsgType.TEXT:
            pass  # a pull frame may come first
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert (ws.close_code, message.extra) == (
            TOKEN_EXPIRED_CLOSE,
            "token expired: reconnect with a fresh one",
        )
        device = SyncClient(gw.url, token(gw.settings, "dan", "pc", ttl=2), "pc")
        with pytest.raises(AuthError, match="the token expired"):
            await asyncio.wait_for(device.run(asyncio.Event()), 30)
