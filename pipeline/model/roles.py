"""Group roles: who may add, remove and promote whom (pure rules).

A group's creator is its first owner; its creation may name admins. Then:

* **owners** set anyone's role (``member.role_set``: owner, admin or member), add
  members, and remove anyone but themselves (to go, an owner leaves);
* **admins** add members and remove plain members;
* **members** add and remove nobody;
* **anyone may leave**, except the last owner: they make another member an owner
  first (the same holds for an owner stepping down to admin or member).

A group always has an owner. The sequencer applies these rules to every
command, so a raw producer cannot get round them, and the gateway asks the same
function first to answer 403 or 409 at once. A group created before roles
existed has none (``roles`` is None): any member adds or removes anyone, as
then, and nobody can set a role in it.

Roles are kept as ``{user: "owner" | "admin"}``; a member without a role is
absent (there are few owners and admins, and many members).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from pipeline.model.events import (
    ConversationCreated,
    MemberChange,
    MemberJoined,
    MemberLeft,
    MemberRoleSet,
    Role,
)

RANK: dict[str, int] = {"member": 0, "admin": 1, "owner": 2}
Roles = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    kind: Literal["forbidden", "conflict"]
    """forbidden: the actor may not (403); conflict: not now, as things stand (409)."""


def role_of(roles: Roles | None, user: str) -> Role:
    role = (roles or {}).get(user, "member")
    return "owner" if role == "owner" else "admin" if role == "admin" else "member"


def created_roles(command: ConversationCreated) -> dict[str, str] | None:
    """A new conversation's roles: a group's creator owns it (None for a direct one,
    whose members never change)."""
    if command.kind != "group":
        return None
    return {command.actor_id: "owner", **dict.fromkeys(command.admins, "admin")}


def refusal(command: MemberChange, members: Collection[str], roles: Roles | None) -> Refusal | None:
    """Why ``command`` may not be applied to a group with these members and roles."""
    conv, actor, user = command.conversation_id, command.actor_id, command.user_id
    if actor not in members:
        return Refusal(f"{actor} is not a member of conversation {conv}", "forbidden")
    if isinstance(command, MemberJoined):
        return _join(roles, actor, user in members, command)
    if user not in members:
        return Refusal(f"{user} is not a member of conversation {conv}", "conflict")
    if isinstance(command, MemberLeft):
        if actor == user:
            return _last_owner(roles, user, conv, "leave")
        return _removal(roles, actor, user, conv)
    return _role(roles, command)


def _join(roles: Roles | None, actor: str, already: bool, command: MemberJoined) -> Refusal | None:
    conv = command.conversation_id
    if roles is not None and RANK[role_of(roles, actor)] < RANK["admin"]:
        return Refusal(f"only the owners and admins of {conv} add members", "forbidden")
    if already:
        return Refusal(f"{command.user_id} is already a member of conversation {conv}", "conflict")
    return None


def _role(roles: Roles | None, command: MemberRoleSet) -> Refusal | None:
    conv, actor, user = command.conversation_id, command.actor_id, command.user_id
    if roles is None:
        return Refusal(f"conversation {conv} was created before roles existed", "conflict")
    if role_of(roles, actor) != "owner":
        return Refusal(f"only the owners of {conv} set roles", "forbidden")
    if role_of(roles, user) == command.role:
        return Refusal(f"{user} is already {command.role} of {conv}", "conflict")
    if command.role != "owner":
        return _last_owner(roles, user, conv, f"become {command.role}")
    return None


def after(command: MemberChange, roles: Roles | None) -> dict[str, str] | None:
    """The roles once ``command`` (allowed) is applied."""
    if roles is None:
        return None
    changed = dict(roles)
    if isinstance(command, MemberLeft):
        changed.pop(command.user_id, None)
    elif not isinstance(command, MemberJoined):
        if command.role == "member":
            changed.pop(command.user_id, None)
        else:
            changed[command.user_id] = command.role
    return changed


def _last_owner(roles: Roles | None, user: str, conv: str, what: str) -> Refusal | None:
    if roles is None or role_of(roles, user) != "owner":
        return None
    if sum(1 for r in roles.values() if r == "owner") > 1:
        return None
    return Refusal(
        f"{user} is the last owner of {conv} and cannot {what}: make another member an owner first",
        "conflict",
    )


def _removal(roles: Roles | None, actor: str, user: str, conv: str) -> Refusal | None:
    if roles is None:
        return None
    mine, theirs = role_of(roles, actor), role_of(roles, user)
    if mine == "owner" or (mine == "admin" and theirs == "member"):
        return None
    if mine == "member":
        return Refusal(f"only the owners and admins of {conv} remove members", "forbidden")
    return Refusal(f"an admin of {conv} cannot remove its {theirs} {user}", "forbidden")
