-- The roaming store: every conversation's storage timeline, for history pages
-- (any member, any device, any age) and for analytics scans.
-- Rows are written idempotently: a replay after a crash writes the same
-- (conversation_id, seq) again and ReplacingMergeTree folds the copies;
-- readers de-duplicate by key (LIMIT 1 BY, or by seq in the client).

CREATE TABLE IF NOT EXISTS messages
(
    conversation_id String,
    seq UInt64,
    event_no UInt64,
    event_id UUID,
    sender_id String,
    client_msg_id String,
    content_type String,
    body String,
    client_ts_ms UInt64,
    ts_ms UInt64,
    created_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(created_at)
ORDER BY (conversation_id, seq)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS conversations
(
    conversation_id String,
    kind Enum8('direct' = 1, 'group' = 2),
    title String,
    created_by String,
    event_id UUID,
    ts_ms UInt64,
    created_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(created_at)
ORDER BY conversation_id;

-- Membership changes at their position in the conversation's log:
-- event_no orders all events of a conversation, after_seq is the last
-- message seq the change follows. A creation gives every initial member a row
-- with the same event_no, so user_id is part of the key: without it a merge
-- would fold the initial members into one.
CREATE TABLE IF NOT EXISTS membership
(
    conversation_id String,
    event_no UInt64,
    user_id String,
    action Enum8('join' = 1, 'leave' = 2),
    actor_id String,
    after_seq UInt64,
    event_id UUID,
    ts_ms UInt64,
    created_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(created_at)
ORDER BY (conversation_id, event_no, user_id);
