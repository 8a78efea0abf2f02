"""The gateway's HTTP API from a client: one method per route (see openapi.py)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson


class ApiError(Exception):
    def __init__(self, status: int, error: str, reason: str, body: Any = None) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.body = body if isinstance(body, dict) else {}


class ApiClient:
    def __init__(self, base_url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = session

    async def call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        data = orjson.dumps(body) if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.base_url + path, data=data, params=params, headers=headers
        ) as response:
            raw = await response.read()
            payload = orjson.loads(raw) if raw else None
            if response.status >= 400:
                payload = payload if isinstance(payload, dict) else {}
                raise ApiError(
                    response.status,
                    payload.get("error", "http_error"),
                    payload.get("reason", raw.decode("utf-8", "replace")),
                    payload,
                )
            return payload

    async def send(
        self,
        conversation_id: str,
        body: str,
        *,
        client_msg_id: str | None = None,
        content_type: str = "text/plain",
    ) -> Any:
        message: dict[str, Any] = {"body": body, "content_type": content_type}
        if client_msg_id is not None:
            message["client_msg_id"] = client_msg_id
        return await self.call("POST", f"/v1/conversations/{conversation_id}/messages", message)

    async def create_group(
        self,
        conversation_id: str | None,
        members: list[str],
        title: str = "",
        admins: list[str] | None = None,
    ) -> Any:
        """``conversation_id`` None: the gateway picks an unguessable one (in the answer).
        The caller owns the group; ``admins`` (members) are its first admins."""
        body: dict[str, Any] = {"members": members, "title": title}
        if admins:
            body["admins"] = admins
        if conversation_id is not None:
            body["conversation_id"] = conversation_id
        return await self.call("POST", "/v1/conversations", body)

    async def create_direct(self, peer: str) -> Any:
        return await self.call("POST", "/v1/direct", {"peer": peer})

    async def join(self, conversation_id: str, user_id: str) -> Any:
        return await self.call(
            "POST", f"/v1/conversations/{conversation_id}/members", {"user_id": user_id}
        )

    async def leave(self, conversation_id: str, user_id: str) -> Any:
        return await self.call("DELETE", f"/v1/conversations/{conversation_id}/members/{user_id}")

    async def set_role(self, conversation_id: str, user_id: str, role: str) -> Any:
        """An owner gives a member a role: ``owner``, ``admin`` or ``member``."""
        return await self.call(
            "PUT", f"/v1/conversations/{conversation_id}/members/{user_id}/role", {"role": role}
        )

    async def conversations(self, limit: int = 50, before: str | None = None) -> Any:
        """The user's conversations, pinned first, then by last activity; a page's
        ``next_before`` gives the next."""
        params: dict[str, Any] = {"limit": limit, **({"before": before} if before else {})}
        return await self.call("GET", "/v1/conversations", params=params)

    async def unread(self) -> Any:
        """The app badge: ``total`` unread in conversations that are not muted."""
        return await self.call("GET", "/v1/unread")

    async def mark_read(self, conversation_id: str, seq: int) -> Any:
        """Read up to ``seq``; every device of the user learns it by its sync timeline."""
        return await self.call("PUT", f"/v1/conversations/{conversation_id}/read", {"seq": seq})

    async def set_prefs(
        self, conversation_id: str, *, muted: bool | None = None, pinned: bool | None = None
    ) -> Any:
        body = {k: v for k, v in (("muted", muted), ("pinned", pinned)) if v is not None}
        return await self.call("PUT", f"/v1/conversations/{conversation_id}/settings", body)

    async def receipt(self, conversation_id: str, seq: int) -> Any:
        """Read by ``read`` of ``of`` members (the sender not counted)."""
        return await self.call(
            "GET", f"/v1/conversations/{conversation_id}/receipts", params={"seq": seq}
        )

    async def history(
        self, conversation_id: str, before: int | None = None, limit: int = 50
    ) -> Any:
        params = {"limit": limit, **({"before": before} if before is not None else {})}
        return await self.call(
            "GET", f"/v1/conversations/{conversation_id}/messages", params=params
        )

    async def pull(self, after: int, limit: int = 100, groups: str = "") -> Any:
        """``groups``: the device's large-group cursors, ``<conversation>:<seq>,...``."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if groups:
            params["groups"] = groups
        return await self.call("GET", "/v1/sync", params=params)

    async def ack(self, device_id: str, cursor: int, groups: dict[str, int] | None = None) -> None:
        body: dict[str, Any] = {"cursor": cursor}
        if groups:
            body["groups"] = groups
        await self.call("PUT", f"/v1/devices/{device_id}/cursor", body)
