"""Reserved conversation ids: the ``dm:`` namespace belongs to direct conversations.

A direct conversation between two users has one id, derived from them
(:func:`direct_conversation_id`), so there is never a second one between the
same two users, and nobody else can take it first: the sequencer refuses a
direct conversation under any other id, and any other conversation under an id
starting with ``dm:`` (pipeline/model/sequencing.py). The gateway refuses the
latter early (400), pointing to ``POST /v1/direct``.
"""

from __future__ import annotations

import hashlib

from pipeline.model.events import MAX_ID_CHARS, ConversationCreated

DIRECT_PREFIX = "dm:"


def direct_conversation_id(a: str, b: str) -> str:
    """The one conversation id of the direct conversation between ``a`` and ``b``."""
    first, second = sorted((a, b))
    candidate = f"{DIRECT_PREFIX}{first}:{second}"
    if len(candidate) <= MAX_ID_CHARS:
        return candidate
    return DIRECT_PREFIX + hashlib.sha256(f"{first}\0{second}".encode()).hexdigest()[:40]


def misnamed(command: ConversationCreated) -> str | None:
    """Why ``command`` may not have its id (None: it may)."""
    conversation_id = command.conversation_id
    if command.kind == "direct" and len(command.members) == 2:
        expected = direct_conversation_id(*command.members)
        if conversation_id != expected:
            return (
                f"a direct conversation between {' and '.join(sorted(command.members))} "
                f"has the id {expected}, not {conversation_id}"
            )
    elif conversation_id.startswith(DIRECT_PREFIX):
        return (
            f"conversation ids starting with {DIRECT_PREFIX} are reserved for direct "
            "conversations (POST /v1/direct)"
        )
    return None
