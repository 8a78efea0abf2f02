-- Read state (docs/read-state.md): what a conversation list and unread counts
-- need, kept by materialized views as the sinks write, never counted by
-- increments. Unread = head - max(read marker, own last sent seq, join point):
-- seqs are dense, and no message of the user's own comes after their last one.
--
-- Every value only moves forward (max, or argMax by a position in the log), so
-- a replayed batch changes nothing and readers fold copies by key. Every
-- statement may run again (imstream rebuild): IF NOT EXISTS, and a second
-- backfill changes no value.

-- A user's own events in their sync timeline: a read marker (seq: read up to
-- it; sender_id is the user, subject_id the device), a mute or a pin (body 'on'
-- or 'off').
ALTER TABLE sync_timeline
    MODIFY COLUMN kind Enum8('message' = 1, 'created' = 2, 'joined' = 3, 'left' = 4, 'role' = 5,
                             'read' = 6, 'muted' = 7, 'pinned' = 8);

-- Each conversation's last message and last activity: a row per message, and one
-- per creation (seq 0, no message), so max(ts_ms) is when it was last active.
CREATE TABLE IF NOT EXISTS conversation_heads
(
    conversation_id String,
    seq UInt64,
    sender_id String,
    content_type String,
    preview String,
    ts_ms UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY conversation_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS conversation_heads_mv TO conversation_heads AS
SELECT conversation_id, seq, sender_id, content_type, substringUTF8(body, 1, 100) AS preview, ts_ms
FROM messages;

CREATE MATERIALIZED VIEW IF NOT EXISTS conversation_heads_created_mv TO conversation_heads AS
SELECT conversation_id, toUInt64(0) AS seq, '' AS sender_id, '' AS content_type, '' AS preview,
       ts_ms
FROM conversations;

INSERT INTO conversation_heads
SELECT conversation_id, max(seq), argMax(sender_id, seq), argMax(content_type, seq),
       substringUTF8(argMax(body, seq), 1, 100), max(ts_ms)
FROM messages
GROUP BY conversation_id;

INSERT INTO conversation_heads
SELECT conversation_id, toUInt64(0), '', '', '', ts_ms FROM conversations;

-- Per user and conversation, the user's own positions, one row after merges,
-- read with the -Merge combinators (GROUP BY user_id, conversation_id):
--   membership  argMax by event_no of (after_seq + 1) for a join, 0 for a leave:
--               > 0 while a member, the join point + 1
--   marker      the read marker (max of the user's read entries)
--   sent        the seq of the user's last message
--   muted       argMax by sync_seq of the latest mute entry (1 on, 0 off)
--   pinned      likewise for pins
-- Each view fills its own columns and gives the others a neutral state (max of
-- 0, argMax at 0), which any real value outranks.
CREATE TABLE IF NOT EXISTS user_conversations
(
    user_id String,
    conversation_id String,
    membership AggregateFunction(argMax, UInt64, UInt64),
    marker AggregateFunction(max, UInt64),
    sent AggregateFunction(max, UInt64),
    muted AggregateFunction(argMax, UInt8, UInt64),
    pinned AggregateFunction(argMax, UInt8, UInt64)
)
ENGINE = AggregatingMergeTree()
ORDER BY (user_id, conversation_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS user_conversations_membership_mv TO user_conversations AS
SELECT user_id, conversation_id,
       argMaxState(if(action = 'join', after_seq + 1, toUInt64(0)), event_no) AS membership,
       maxState(toUInt64(0)) AS marker,
       maxState(toUInt64(0)) AS sent,
       argMaxState(toUInt8(0), toUInt64(0)) AS muted,
       argMaxState(toUInt8(0), toUInt64(0)) AS pinned
FROM membership
GROUP BY user_id, conversation_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS user_conversations_sent_mv TO user_conversations AS
SELECT sender_id AS user_id, conversation_id,
       argMaxState(toUInt64(0), toUInt64(0)) AS membership,
       maxState(toUInt64(0)) AS marker,
       maxState(seq) AS sent,
       argMaxState(toUInt8(0), toUInt64(0)) AS muted,
       argMaxState(toUInt8(0), toUInt64(0)) AS pinned
FROM messages
GROUP BY user_id, conversation_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS user_conversations_own_mv TO user_conversations AS
SELECT user_id, conversation_id,
       argMaxState(toUInt64(0), toUInt64(0)) AS membership,
       maxState(if(kind = 'read', seq, toUInt64(0))) AS marker,
       maxState(toUInt64(0)) AS sent,
       argMaxState(if(kind = 'muted', toUInt8(body = 'on'), toUInt8(0)),
                   if(kind = 'muted', sync_seq, toUInt64(0))) AS muted,
       argMaxState(if(kind = 'pinned', toUInt8(body = 'on'), toUInt8(0)),
                   if(kind = 'pinned', sync_seq, toUInt64(0))) AS pinned
FROM sync_timeline
WHERE kind IN ('read', 'muted', 'pinned')
GROUP BY user_id, conversation_id;

INSERT INTO user_conversations
SELECT user_id, conversation_id,
       argMaxState(if(action = 'join', after_seq + 1, toUInt64(0)), event_no),
       maxState(toUInt64(0)), maxState(toUInt64(0)),
       argMaxState(toUInt8(0), toUInt64(0)), argMaxState(toUInt8(0), toUInt64(0))
FROM membership
GROUP BY user_id, conversation_id;

INSERT INTO user_conversations
SELECT sender_id, conversation_id, argMaxState(toUInt64(0), toUInt64(0)),
       maxState(toUInt64(0)), maxState(seq),
       argMaxState(toUInt8(0), toUInt64(0)), argMaxState(toUInt8(0), toUInt64(0))
FROM messages
GROUP BY sender_id, conversation_id;

INSERT INTO user_conversations
SELECT user_id, conversation_id, argMaxState(toUInt64(0), toUInt64(0)),
       maxState(if(kind = 'read', seq, toUInt64(0))), maxState(toUInt64(0)),
       argMaxState(if(kind = 'muted', toUInt8(body = 'on'), toUInt8(0)),
                   if(kind = 'muted', sync_seq, toUInt64(0))),
       argMaxState(if(kind = 'pinned', toUInt8(body = 'on'), toUInt8(0)),
                   if(kind = 'pinned', sync_seq, toUInt64(0)))
FROM sync_timeline
WHERE kind IN ('read', 'muted', 'pinned')
GROUP BY user_id, conversation_id;

-- The distribution index of receipts: per conversation, each member's read
-- point (the highest of their marker and their last message), ordered by
-- conversation, so "read by N of M" for any seq is one range read.
CREATE TABLE IF NOT EXISTS read_points
(
    conversation_id String,
    user_id String,
    seq UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (conversation_id, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS read_points_marked_mv TO read_points AS
SELECT conversation_id, user_id, seq FROM sync_timeline WHERE kind = 'read';

CREATE MATERIALIZED VIEW IF NOT EXISTS read_points_sent_mv TO read_points AS
SELECT conversation_id, sender_id AS user_id, seq FROM messages;

INSERT INTO read_points
SELECT conversation_id, user_id, seq FROM sync_timeline WHERE kind = 'read';

INSERT INTO read_points
SELECT conversation_id, sender_id, max(seq) FROM messages GROUP BY conversation_id, sender_id;
