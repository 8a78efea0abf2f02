-- Per-minute rollups: the same aggregates as migration 0003's per-day ones, by
-- the minute of the log's time (created_at). A replayed sink batch changes none
-- of them (min and max seq per conversation, the exact set of senders), for the
-- reasons 0003 gives. They are what `imstream live`'s per-minute figures are
-- checked against (tests/integration/live), and what a dashboard plots:
--
--   SELECT minute, sum(high - low + 1) AS messages FROM (
--     SELECT minute, conversation_id, minMerge(first_seq) AS low,
--            maxMerge(last_seq) AS high
--     FROM conversation_minutes GROUP BY minute, conversation_id)
--   GROUP BY minute ORDER BY minute
--
-- One row per conversation with messages per minute (before merges): on a
-- store where most conversations see a message a minute, about one row per
-- message. Partitioned by day, so that old minutes can be dropped a day at a
-- time (ALTER TABLE conversation_minutes DROP PARTITION 20261130). Every
-- statement may run again: IF NOT EXISTS, and a second backfill changes no
-- aggregate.

CREATE TABLE IF NOT EXISTS conversation_minutes
(
    minute DateTime('UTC'),
    conversation_id String,
    first_seq AggregateFunction(min, UInt64),
    last_seq AggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, conversation_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS conversation_minutes_mv TO conversation_minutes AS
SELECT
    toStartOfMinute(created_at) AS minute,
    conversation_id,
    minState(seq) AS first_seq,
    maxState(seq) AS last_seq
FROM messages
GROUP BY minute, conversation_id;

INSERT INTO conversation_minutes
SELECT
    toStartOfMinute(created_at) AS minute,
    conversation_id,
    minState(seq) AS first_seq,
    maxState(seq) AS last_seq
FROM messages
GROUP BY minute, conversation_id;

CREATE TABLE IF NOT EXISTS sender_minutes
(
    minute DateTime('UTC'),
    senders AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(minute)
ORDER BY minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS sender_minutes_mv TO sender_minutes AS
SELECT
    toStartOfMinute(created_at) AS minute,
    uniqExactState(sender_id) AS senders
FROM messages
GROUP BY minute;

INSERT INTO sender_minutes
SELECT
    toStartOfMinute(created_at) AS minute,
    uniqExactState(sender_id) AS senders
FROM messages
GROUP BY minute;
