"""Group roles on the real stack: the gateway refuses early what the rules forbid,
the sequencer refuses it from a raw producer too, ownership is handed over before
the last owner leaves, and a role change is a sync entry like a join."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from tests.support import dead_letters, eventually, gateway_process, running_worker, token


async def test_owners_and_admins_decide_and_a_group_keeps_an_owner(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
        Producer(settings) as producer,
    ):

        def auth(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token(gw.settings, user, 'phone')}"}

        async def call(user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
            async with http.request(method, gw.url + path, json=body, headers=auth(user)) as answer:
                return answer.status, await answer.json(content_type=None)

        async def shown(user: str = "alice") -> Any:
            return await call(user, "GET", "/v1/conversations/team")

        members = "/v1/conversations/team/members"
        status, _ = await call(
            "alice",
            "POST",
            "/v1/conversations",
            {"conversation_id": "team", "members": ["carol"], "admins": ["bob"]},
        )
        assert status == 202
        status, group = await eventually(shown, lambda r: r[0] == 200, within=30)
        assert group["members"] == ["alice", "bob", "carol"]  # an admin is a member
        assert group["roles"] == {"alice": "owner", "bob": "admin"}

        # refused at the gateway, before anything is produced
        status, body = await call("carol", "POST", members, {"user_id": "dave"})
        assert (status, body["reason"]) == (403, "only the owners and admins of team add members")
        status, body = await call("carol", "DELETE", f"{members}/bob")
        assert status == 403
        status, body = await call("bob", "DELETE", f"{members}/alice")
        assert (status, body["reason"]) == (403, "an admin of team cannot remove its owner alice")
        status, body = await call("bob", "PUT", f"{members}/carol/role", {"role": "admin"})
        assert (status, body["reason"]) == (403, "only the owners of team set roles")
        status, body = await call("alice", "DELETE", f"{members}/alice")
        assert status == 409
        assert body["reason"].startswith("alice is the last owner of team and cannot leave")
        status, body = await call("alice", "PUT", f"{members}/bob/role", {"role": "boss"})
        assert status == 400

        # a raw producer gets round the gateway, not the sequencer
        await producer.leave("team", "carol", "alice")
        (letter,) = await dead_letters(settings, 1)  # and nothing else was refused
        assert letter.stage == "sequencer"
        assert letter.reason == "rejected: only the owners and admins of team remove members"

        # an admin adds; the owner hands over, then leaves
        assert (await call("bob", "POST", members, {"user_id": "dave"}))[0] == 202
        assert (await call("alice", "PUT", f"{members}/bob/role", {"role": "owner"}))[0] == 202
        _, group = await eventually(
            shown, lambda r: r[1].get("roles", {}).get("bob") == "owner", within=30
        )
        assert group["roles"] == {"alice": "owner", "bob": "owner"}
        assert (await call("alice", "DELETE", f"{members}/alice"))[0] == 202
        _, group = await eventually(
            lambda: shown("bob"), lambda r: "alice" not in r[1]["members"], within=30
        )
        assert group["members"] == ["bob", "carol", "dave"]
        assert group["roles"] == {"bob": "owner"}

        # carol's devices learn of the new owner like of a join: a sync entry
        async def roles_pulled() -> list[dict[str, Any]]:
            _, page = await call("carol", "GET", "/v1/sync?after=0")
            return [e for e in page["entries"] if e["kind"] == "role"]

        (entry,) = await eventually(roles_pulled, bool, within=30)
        assert (entry["sender_id"], entry["subject_id"], entry["body"]) == ("alice", "bob", "owner")
        store = ClickHouse(settings, size=1)
        try:
            rows = await store.execute(
                "SELECT toString(kind), subject_id, body FROM sync_timeline "
                "WHERE user_id = 'dave' AND kind = 'role'"
            )
        finally:
            store.close()
        assert rows == [("role", "bob", "owner")]  # dave was a member by then
