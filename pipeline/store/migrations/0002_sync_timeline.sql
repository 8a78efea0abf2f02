-- Sync timelines: per receiver, what that user's devices still have to fetch,
-- with a dense per-user sync_seq. Partitioned by day so that retention is a
-- DROP PARTITION of the days older than the sync lifetime (18.16 has no TTL).

CREATE TABLE IF NOT EXISTS sync_timeline
(
    user_id String,
    sync_seq UInt64,
    conversation_id String,
    event_no UInt64,
    seq UInt64,
    kind Enum8('message' = 1, 'created' = 2, 'joined' = 3, 'left' = 4),
    event_id UUID,
    sender_id String,
    subject_id String,
    client_msg_id String,
    content_type String,
    body String,
    ts_ms UInt64,
    created_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(created_at)
ORDER BY (user_id, sync_seq)
SETTINGS index_granularity = 1024;

-- The highest sync_seq ever written per user. Not subject to retention, so a
-- cursor whose entries were all dropped is told "expired", not "caught up".
CREATE TABLE IF NOT EXISTS sync_heads
(
    user_id String,
    head UInt64
)
ENGINE = ReplacingMergeTree(head)
ORDER BY user_id;

-- Every device's acknowledged cursor; a cursor only moves forward.
CREATE TABLE IF NOT EXISTS device_cursors
(
    user_id String,
    device_id String,
    cursor UInt64,
    updated_ms UInt64
)
ENGINE = ReplacingMergeTree(cursor)
ORDER BY (user_id, device_id);
