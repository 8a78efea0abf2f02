"""The worker and its agents: the flow of a message, one module per agent.

    im.messages ─ sequencer ─┬─► im.timeline ─ store ─► ClickHouse (roaming store)
                             └─► im.sync (one delivery per receiver, same transaction)
    im.sync ─ sync ─► im.inbox ─┬─ sync_store ─► ClickHouse (sync timelines, pull by cursor)
                                └─ push ─► im.push.<gateway> (online devices)

``runtime/`` is what they share: the exactly-once transactional stage, the
idempotent ClickHouse sink and the health endpoint; ``worker`` wires the agents
to topics and runs them. May import ``pipeline`` (never ``pipeline.cli``,
``pipeline.gateway`` or ``pipeline.ops``); never ``infra`` or ``bench``.
"""
