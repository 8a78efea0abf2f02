-- Read state (docs/read-state.md): what a conversation list and unread counts
-- need, kept by materialized views as the sinks write, never counted by
-- increments. Unread = head - max(read marker, own last sent seq, join point):
-- seqs are dense, and no message of the user's own comes after their last one.
--
-- Every table is ReplacingMergeTree with the seq (or sync_seq) as its version:
-- a replayed batch only adds copies, and a row only ever moves forward, so
-- readers take max / argMax by key. Every statement may run again (imstream
-- rebuild): IF NOT EXISTS, and a second backfill only adds copies.

-- A user's own events in their sync timeline: a read marker (seq: read up to
-- it; sender_id is the user, subject_id the device), a mute or a pin (body 'on'
-- or 'off').
ALTER TABLE sync_timeline
    MODIFY COLUMN kind Enum8('message' = 1, 'created' = 2, 'joined' = 3, 'left' = 4, 'role' = 5,
                             'read' = 6, 'muted' = 7, 'pinned' = 8);

-- Each conversation's last message: its head seq, and what a list shows of it.
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

INSERT INTO conversation_heads
SELECT conversation_id, max(seq), argMax(sender_id, seq), argMax(content_type, seq),
       substringUTF8(argMax(body, seq), 1, 100), max(ts_ms)
FROM messages
GROUP BY conversation_id;

-- A user's read marker per conversation (only moves forward: the sync stage
-- drops a marker behind the user's).
CREATE TABLE IF NOT EXISTS read_markers
(
    user_id String,
    conversation_id String,
    seq UInt64,
    ts_ms UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (user_id, conversation_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS read_markers_mv TO read_markers AS
SELECT user_id, conversation_id, seq, ts_ms FROM sync_timeline WHERE kind = 'read';

INSERT INTO read_markers
SELECT user_id, conversation_id, seq, ts_ms FROM sync_timeline WHERE kind = 'read';

-- A user's last message per conversation: everything before it is read.
CREATE TABLE IF NOT EXISTS last_sent
(
    user_id String,
    conversation_id String,
    seq UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (user_id, conversation_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS last_sent_mv TO last_sent AS
SELECT sender_id AS user_id, conversation_id, seq FROM messages;

INSERT INTO last_sent
SELECT sender_id, conversation_id, max(seq) FROM messages GROUP BY sender_id, conversation_id;

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

-- Mute and pin per user and conversation: the latest setting wins (by sync_seq).
CREATE TABLE IF NOT EXISTS conversation_prefs
(
    user_id String,
    conversation_id String,
    pref String,
    enabled UInt8,
    sync_seq UInt64
)
ENGINE = ReplacingMergeTree(sync_seq)
ORDER BY (user_id, conversation_id, pref);

CREATE MATERIALIZED VIEW IF NOT EXISTS conversation_prefs_mv TO conversation_prefs AS
SELECT user_id, conversation_id, toString(kind) AS pref, body = 'on' AS enabled, sync_seq
FROM sync_timeline
WHERE kind IN ('muted', 'pinned');

INSERT INTO conversation_prefs
SELECT user_id, conversation_id, toString(kind), body = 'on', sync_seq
FROM sync_timeline
WHERE kind IN ('muted', 'pinned');
