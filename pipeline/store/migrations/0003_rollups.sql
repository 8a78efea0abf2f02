-- Rollups for analytics, kept by materialized views.
--
-- Why not count inserted rows: the sinks are at-least-once. After a crash or a
-- rebalance a sink writes a batch again; ReplacingMergeTree folds the copies in
-- the stores, but a materialized view sees every INSERT, so a view that kept
-- count() or sum() would count a replayed batch twice, forever.
--
-- So every rollup keeps only aggregates that a copy cannot change:
--
-- * messages per conversation per day: seqs are dense per conversation (1, 2,
--   3, ...) and the sequencer's ts_ms never decreases within a conversation, so
--   the messages of one conversation on one day are exactly the seqs
--   min(seq)..max(seq) of that day: max(seq) - min(seq) + 1 of them. min and max
--   do not change when a row comes twice. (The same holds for any contiguous
--   range of days: max over the range - min over the range + 1.)
-- * sync entries per user per day: sync_seq is dense per user and an entry's
--   ts_ms never decreases within a user's timeline (pipeline/model/syncing.py), so
--   the same min/max argument counts fan-out volume.
-- * active senders per day: the exact set of sender ids (uniqExact); adding a
--   sender twice leaves a set as it is.
--
-- Read them with the -Merge combinators, grouped by the table's key: parts
-- are merged in the background, so one key may still have several rows.
--
-- Existing data: a materialized view only sees rows inserted after it exists.
-- Each view is created first and then backfilled from its source table with
-- INSERT ... SELECT. A row written between the two is seen by both, which the
-- aggregates above absorb, so nothing is missed and nothing counts twice. The
-- backfill reads the source tables once: on a large store, expect this
-- migration to take as long as one full scan of messages and sync_timeline.
-- Rows that retention later drops from sync_timeline stay counted in
-- user_sync_days: the rollup outlives the sync lifetime on purpose.
--
-- Every statement here may run again on a database that already has them
-- (imstream rebuild --replace does): CREATE ... IF NOT EXISTS, and a second
-- backfill changes no aggregate.

CREATE TABLE IF NOT EXISTS conversation_days
(
    day Date,
    conversation_id String,
    first_seq AggregateFunction(min, UInt64),
    last_seq AggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, conversation_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS conversation_days_mv TO conversation_days AS
SELECT
    toDate(created_at) AS day,
    conversation_id,
    minState(seq) AS first_seq,
    maxState(seq) AS last_seq
FROM messages
GROUP BY day, conversation_id;

INSERT INTO conversation_days
SELECT
    toDate(created_at) AS day,
    conversation_id,
    minState(seq) AS first_seq,
    maxState(seq) AS last_seq
FROM messages
GROUP BY day, conversation_id;

CREATE TABLE IF NOT EXISTS sender_days
(
    day Date,
    senders AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY day;

CREATE MATERIALIZED VIEW IF NOT EXISTS sender_days_mv TO sender_days AS
SELECT
    toDate(created_at) AS day,
    uniqExactState(sender_id) AS senders
FROM messages
GROUP BY day;

INSERT INTO sender_days
SELECT
    toDate(created_at) AS day,
    uniqExactState(sender_id) AS senders
FROM messages
GROUP BY day;

CREATE TABLE IF NOT EXISTS user_sync_days
(
    day Date,
    user_id String,
    first_sync_seq AggregateFunction(min, UInt64),
    last_sync_seq AggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS user_sync_days_mv TO user_sync_days AS
SELECT
    toDate(created_at) AS day,
    user_id,
    minState(sync_seq) AS first_sync_seq,
    maxState(sync_seq) AS last_sync_seq
FROM sync_timeline
GROUP BY day, user_id;

INSERT INTO user_sync_days
SELECT
    toDate(created_at) AS day,
    user_id,
    minState(sync_seq) AS first_sync_seq,
    maxState(sync_seq) AS last_sync_seq
FROM sync_timeline
GROUP BY day, user_id;
