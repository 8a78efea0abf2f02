-- Read diffusion (pipeline/model/diffusion.py): a large group's messages are not
-- copied into its members' sync timelines; a pull reads them from the group's
-- storage timeline (messages) after the device's cursor in that group. These
-- tables let a pull find a user's large groups by user, and keep the cursors.
--
-- Like every table a sink writes, they are ReplacingMergeTree keyed by
-- deterministic ids: a replayed batch writes the same rows again, and readers
-- fold the copies (LIMIT 1 BY, min/max). Every statement may run again
-- (imstream rebuild): IF NOT EXISTS, and a second backfill only adds copies.

-- Every membership change again, ordered by user: a user's conversations
-- without scanning the membership of everyone. A view fills it from
-- membership; the backfill below copies the rows written before the view
-- existed (a row written in between is seen by both: a copy, folded).
CREATE TABLE IF NOT EXISTS membership_by_user
(
    user_id String,
    conversation_id String,
    event_no UInt64,
    action Enum8('join' = 1, 'leave' = 2),
    after_seq UInt64
)
ENGINE = ReplacingMergeTree()
ORDER BY (user_id, conversation_id, event_no);

CREATE MATERIALIZED VIEW IF NOT EXISTS membership_by_user_mv TO membership_by_user AS
SELECT user_id, conversation_id, event_no, action, after_seq
FROM membership;

INSERT INTO membership_by_user
SELECT user_id, conversation_id, event_no, action, after_seq
FROM membership;

-- The membership changes of large groups, written from events marked large by
-- the store (from im.timeline) and by the sync store (from im.inbox, before
-- the sync entries they belong to, so a pulled entry finds its group here).
-- A group's first row is where it became large: its messages after that seq
-- are read diffused; the ones up to it are in the sync timelines.
CREATE TABLE IF NOT EXISTS large_groups
(
    conversation_id String,
    event_no UInt64,
    seq UInt64
)
ENGINE = ReplacingMergeTree()
ORDER BY (conversation_id, event_no);

-- Per large group, the last event of each batch the store wrote (after the
-- batch's rows): every event of the group up to event_no is stored, and seq
-- is the head of its storage timeline.
CREATE TABLE IF NOT EXISTS large_group_heads
(
    conversation_id String,
    seq UInt64,
    event_no UInt64
)
ENGINE = ReplacingMergeTree(event_no)
ORDER BY conversation_id;

-- Each device's position (seq) in each large group it reads; only moves forward.
CREATE TABLE IF NOT EXISTS device_group_cursors
(
    user_id String,
    device_id String,
    conversation_id String,
    seq UInt64,
    updated_ms UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (user_id, device_id, conversation_id);
