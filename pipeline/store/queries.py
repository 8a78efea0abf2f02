"""Every SQL statement imstream runs outside the migrations, in one place.

Each is valid on the old Debian server (18.16) and on current ClickHouse:
tests/integration/store/test_sql_modern.py runs every one of them on a modern engine
(chdb) with example parameters. Values always travel as ``%(name)s``
parameters or as the data argument of an INSERT, never inside the text.

Tables written by at-least-once sinks hold copies of a row after a replay;
reads fold them with ``LIMIT 1 BY <key>`` (or aggregates that copies do not
change, like max/min/argMax/uniqExact).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Insert:
    table: str
    columns: tuple[str, ...]

    @property
    def sql(self) -> str:
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES"


# ------------------------------------------------------------------ writes

INSERT_MESSAGES = Insert(
    "messages",
    (
        "conversation_id",
        "seq",
        "event_no",
        "event_id",
        "sender_id",
        "client_msg_id",
        "content_type",
        "body",
        "client_ts_ms",
        "ts_ms",
        "created_at",
    ),
)
INSERT_CONVERSATIONS = Insert(
    "conversations",
    ("conversation_id", "kind", "title", "created_by", "event_id", "ts_ms", "created_at"),
)
INSERT_MEMBERSHIP = Insert(
    "membership",
    (
        "conversation_id",
        "event_no",
        "user_id",
        "action",
        "actor_id",
        "after_seq",
        "event_id",
        "ts_ms",
        "created_at",
    ),
)
INSERT_SYNC_TIMELINE = Insert(
    "sync_timeline",
    (
        "user_id",
        "sync_seq",
        "conversation_id",
        "event_no",
        "seq",
        "kind",
        "event_id",
        "sender_id",
        "subject_id",
        "client_msg_id",
        "content_type",
        "body",
        "ts_ms",
        "created_at",
    ),
)
INSERT_SYNC_HEADS = Insert("sync_heads", ("user_id", "head"))
INSERT_DEVICE_CURSOR = Insert("device_cursors", ("user_id", "device_id", "cursor", "updated_ms"))
INSERT_LARGE_GROUPS = Insert("large_groups", ("conversation_id", "event_no", "seq"))
INSERT_LARGE_GROUP_HEADS = Insert("large_group_heads", ("conversation_id", "seq", "event_no"))
INSERT_DEVICE_GROUP_CURSOR = Insert(
    "device_group_cursors", ("user_id", "device_id", "conversation_id", "seq", "updated_ms")
)

INSERTS = (
    INSERT_MESSAGES,
    INSERT_CONVERSATIONS,
    INSERT_MEMBERSHIP,
    INSERT_SYNC_TIMELINE,
    INSERT_SYNC_HEADS,
    INSERT_DEVICE_CURSOR,
    INSERT_LARGE_GROUPS,
    INSERT_LARGE_GROUP_HEADS,
    INSERT_DEVICE_GROUP_CURSOR,
)

# ------------------------------------------------------------------ roaming store

HISTORY_HEAD = "SELECT max(seq) FROM messages WHERE conversation_id = %(conversation_id)s"

HISTORY_RANGE = """
SELECT seq, event_id, sender_id, client_msg_id, content_type, body, client_ts_ms, ts_ms
FROM messages
WHERE conversation_id = %(conversation_id)s AND seq >= %(low)s AND seq <= %(high)s
ORDER BY seq DESC
LIMIT 1 BY seq
"""

MEMBER_LAST_ACTION = """
SELECT action
FROM membership
WHERE conversation_id = %(conversation_id)s AND user_id = %(user_id)s
ORDER BY event_no DESC
LIMIT 1
"""

MEMBER_ACTIONS = """
SELECT event_no, action, after_seq
FROM membership
WHERE conversation_id = %(conversation_id)s AND user_id = %(user_id)s
ORDER BY event_no
LIMIT 1 BY event_no
"""

CURRENT_MEMBERS = """
SELECT user_id
FROM membership
WHERE conversation_id = %(conversation_id)s
GROUP BY user_id
HAVING argMax(action, event_no) = 'join'
ORDER BY user_id
"""

CONVERSATION = """
SELECT conversation_id, kind, title, created_by, ts_ms
FROM conversations
WHERE conversation_id = %(conversation_id)s
LIMIT 1
"""

# ------------------------------------------------------------------ sync timelines

SYNC_RANGE = """
SELECT sync_seq, conversation_id, event_no, seq, kind, event_id, sender_id, subject_id,
       client_msg_id, content_type, body, ts_ms
FROM sync_timeline
WHERE user_id = %(user_id)s AND sync_seq > %(after)s AND sync_seq <= %(high)s
ORDER BY sync_seq
LIMIT 1 BY sync_seq
"""

SYNC_FLOOR = "SELECT min(sync_seq), count() FROM sync_timeline WHERE user_id = %(user_id)s"

SYNC_HEAD = "SELECT max(head) FROM sync_heads WHERE user_id = %(user_id)s"

DEVICE_CURSORS = """
SELECT device_id, max(cursor), max(updated_ms)
FROM device_cursors
WHERE user_id = %(user_id)s
GROUP BY device_id
ORDER BY device_id
"""

SYNC_PARTITIONS = """
SELECT DISTINCT partition_id
FROM system.parts
WHERE database = %(database)s AND table = 'sync_timeline' AND active
ORDER BY partition_id
"""

DROP_SYNC_PARTITION = "ALTER TABLE sync_timeline DROP PARTITION ID %(partition_id)s"

# ------------------------------------------------------------------ read diffusion (0004)

# the large groups a user has ever been in, each with where it became large
USER_LARGE_GROUPS = """
SELECT conversation_id, min(event_no), argMin(seq, event_no)
FROM large_groups
WHERE conversation_id IN
(
    SELECT conversation_id FROM membership_by_user WHERE user_id = %(user_id)s
)
GROUP BY conversation_id
ORDER BY conversation_id
"""

LARGE_GROUPS_IN = """
SELECT conversation_id, min(event_no), argMin(seq, event_no)
FROM large_groups
WHERE conversation_id IN %(conversation_ids)s
GROUP BY conversation_id
ORDER BY conversation_id
"""

USER_MEMBERSHIP_IN = """
SELECT conversation_id, event_no, action, after_seq
FROM membership_by_user
WHERE user_id = %(user_id)s AND conversation_id IN %(conversation_ids)s
ORDER BY conversation_id, event_no
LIMIT 1 BY conversation_id, event_no
"""

LARGE_GROUP_HEADS = """
SELECT conversation_id, max(seq), max(event_no)
FROM large_group_heads
WHERE conversation_id IN %(conversation_ids)s
GROUP BY conversation_id
ORDER BY conversation_id
"""

USER_GROUP_CURSORS = """
SELECT device_id, conversation_id, max(seq)
FROM device_group_cursors
WHERE user_id = %(user_id)s
GROUP BY device_id, conversation_id
ORDER BY device_id, conversation_id
"""

# ------------------------------------------------------------------ read state

# Every conversation a user is in now with its read state, all numbers: unread as
# pipeline/model/unread.py defines it (head - max(marker, last sent, join point)).
# The user's own positions are one row per conversation of user_conversations;
# joined to the heads in the server, so the gateway decodes a page or a total, not
# 10,000 rows; what a list shows of each conversation (titles, previews) is read
# for its page only.
_read_state = """
SELECT conversation_id, joined_after, marker, sent, muted, pinned, head, activity,
       greatest(greatest(marker, sent), joined_after) AS read_up_to,
       if(head > read_up_to, head - read_up_to, 0) AS unread
FROM
(
    SELECT conversation_id, membership - 1 AS joined_after, marker, sent, muted, pinned
    FROM
    (
        SELECT conversation_id, argMaxMerge(membership) AS membership,
               maxMerge(marker) AS marker, maxMerge(sent) AS sent,
               argMaxMerge(muted) AS muted, argMaxMerge(pinned) AS pinned
        FROM user_conversations
        WHERE user_id = %(user_id)s
        GROUP BY conversation_id
    )
    WHERE membership > 0
) AS mine
ANY LEFT JOIN
(
    SELECT conversation_id, max(seq) AS head, max(ts_ms) AS activity
    FROM conversation_heads
    WHERE conversation_id IN
    (
        SELECT conversation_id FROM user_conversations WHERE user_id = %(user_id)s
    )
    GROUP BY conversation_id
) AS heads USING conversation_id
"""

# the badge: unread in the conversations that are not muted; conversations with unread
USER_UNREAD = f"""
SELECT sumIf(unread, muted = 0), countIf(unread > 0), count()
FROM ({_read_state})
"""

# a page of the list: pinned first, then by last activity (the last message, else the
# creation), newest first, after the position (pinned, activity, conversation_id) of
# the previous page's last item
USER_LIST_PAGE = f"""
SELECT conversation_id, head, joined_after, marker, sent, muted, pinned, activity
FROM ({_read_state})
WHERE pinned < %(pinned)s
   OR (pinned = %(pinned)s
       AND (activity < %(activity)s
            OR (activity = %(activity)s AND conversation_id < %(conversation_id)s)))
ORDER BY pinned DESC, activity DESC, conversation_id DESC
LIMIT %(limit)s
"""

# what a list page shows of its conversations: the last message, the title and kind
LIST_DETAILS = """
SELECT 'head' AS what, conversation_id, argMax(sender_id, seq) AS a,
       argMax(content_type, seq) AS b, argMax(preview, seq) AS c
FROM conversation_heads
WHERE conversation_id IN %(conversation_ids)s
GROUP BY conversation_id
UNION ALL
SELECT 'info' AS what, conversation_id, toString(any(kind)) AS a, any(title) AS b, '' AS c
FROM conversations
WHERE conversation_id IN %(conversation_ids)s
GROUP BY conversation_id
"""

CONVERSATION_HEAD = """
SELECT max(seq) FROM conversation_heads WHERE conversation_id = %(conversation_id)s
"""

# every user's read point in a conversation (receipts: read by N of M)
READ_POINTS = """
SELECT user_id, max(seq)
FROM read_points
WHERE conversation_id = %(conversation_id)s
GROUP BY user_id
"""

MESSAGE_SENDER = """
SELECT sender_id
FROM messages
WHERE conversation_id = %(conversation_id)s AND seq = %(seq)s
LIMIT 1
"""

# read latency: the messages each read marker made in [since_ms, until_ms) covers
# (after the reader's previous marker and join, not their own), each with the time
# from the message to the marker, as histogram buckets by the marker's hour
_markers_in_window = """
SELECT user_id FROM sync_timeline
WHERE kind = 'read' AND ts_ms >= %(since_ms)s AND ts_ms < %(until_ms)s
"""
_read_latency = f"""
SELECT toStartOfHour(toDateTime(intDiv(marked_ms, 1000), 'UTC')) AS hour,
       toUInt8(least(floor(log2(greatest(marked_ms - sent_ms, 1))), 40)) AS bucket,
       count() AS reads
FROM
(
    SELECT user_id, conversation_id, seq, marked_ms
    FROM
    (
        SELECT user_id, conversation_id, mark.1 AS upto, mark.2 AS marked_ms,
               greatest(prev, joined_after) AS low
        FROM
        (
            SELECT *
            FROM
            (
                SELECT user_id, conversation_id,
                       arraySort(groupArray((seq, ts_ms))) AS marks,
                       arrayPushFront(arrayPopBack(arrayMap(m -> m.1, marks)), toUInt64(0))
                           AS prevs
                FROM
                (
                    SELECT user_id, conversation_id, seq, ts_ms
                    FROM sync_timeline
                    WHERE kind = 'read' AND ts_ms < %(until_ms)s
                      AND user_id IN ({_markers_in_window})
                    LIMIT 1 BY user_id, sync_seq
                )
                GROUP BY user_id, conversation_id
            ) AS marked
            ANY LEFT JOIN
            (
                SELECT user_id, conversation_id, argMaxMerge(membership) AS membership,
                       toUInt64(if(membership > 0, membership - 1, 0)) AS joined_after
                FROM user_conversations
                WHERE user_id IN ({_markers_in_window})
                GROUP BY user_id, conversation_id
            ) AS joined USING (user_id, conversation_id)
        )
        ARRAY JOIN marks AS mark, prevs AS prev
        WHERE marked_ms >= %(since_ms)s
    )
    ARRAY JOIN arrayMap(k -> low + 1 + k, range(toUInt64(if(upto > low, upto - low, 0)))) AS seq
) AS covered
ANY INNER JOIN
(
    SELECT conversation_id, seq, sender_id, ts_ms AS sent_ms
    FROM messages
    WHERE conversation_id IN
    (
        SELECT conversation_id FROM sync_timeline
        WHERE kind = 'read' AND ts_ms >= %(since_ms)s AND ts_ms < %(until_ms)s
    )
) AS sent USING (conversation_id, seq)
WHERE sender_id != user_id
GROUP BY hour, bucket
"""

ROLLUP_READ_LATENCY = f"""
INSERT INTO read_latency_hours (hour, bucket, reads, computed_ms)
SELECT hour, bucket, reads, %(computed_ms)s FROM ({_read_latency})
"""

# per day: the reads in each bucket (a recomputed hour counts once: its latest rows)
REPORT_READ_LATENCY = """
SELECT toDate(hour) AS day, bucket, sum(reads)
FROM
(
    SELECT hour, bucket, argMax(reads, computed_ms) AS reads
    FROM read_latency_hours
    WHERE toDate(hour) >= %(since)s AND toDate(hour) <= %(until)s
    GROUP BY hour, bucket
)
GROUP BY day, bucket
ORDER BY day, bucket
"""

# ------------------------------------------------------------------ invariant checker

CHECK_HISTORY = """
SELECT conversation_id, seq, groupUniqArray(toString(event_id))
FROM messages
GROUP BY conversation_id, seq
"""

CHECK_SYNC = """
SELECT user_id, sync_seq, groupUniqArray((conversation_id, event_no))
FROM sync_timeline
GROUP BY user_id, sync_seq
ORDER BY user_id, sync_seq
"""

# read state: every read entry (by user, in sync order), and what the tables hold
CHECK_READ_ENTRIES = """
SELECT user_id, sync_seq, conversation_id, seq
FROM sync_timeline
WHERE kind = 'read'
ORDER BY user_id, sync_seq
LIMIT 1 BY user_id, sync_seq
"""

CHECK_READ_TABLES = """
SELECT 'marker' AS what, user_id, conversation_id, maxMerge(marker) AS value
FROM user_conversations GROUP BY user_id, conversation_id HAVING value > 0
UNION ALL
SELECT 'sent' AS what, user_id, conversation_id, maxMerge(sent) AS value
FROM user_conversations GROUP BY user_id, conversation_id HAVING value > 0
UNION ALL
SELECT 'head' AS what, '' AS user_id, conversation_id, max(seq) AS value
FROM conversation_heads GROUP BY conversation_id HAVING value > 0
"""

# where every large group became large, and its members' membership changes
CHECK_LARGE_GROUPS = """
SELECT conversation_id, min(event_no), argMin(seq, event_no)
FROM large_groups
GROUP BY conversation_id
"""

CHECK_LARGE_MEMBERSHIP = """
SELECT user_id, conversation_id, event_no, action, after_seq
FROM membership_by_user
WHERE conversation_id IN (SELECT conversation_id FROM large_groups)
ORDER BY user_id, conversation_id, event_no
LIMIT 1 BY user_id, conversation_id, event_no
"""

# ------------------------------------------------------------------ analytics reports
# They read the rollups of migration 0003, grouped by each rollup's key (parts
# not merged yet fold at read); see 0003_rollups.sql for why a replayed batch
# changes none of these figures. A period is a range of whole UTC days.

REPORT_DAILY_VOLUME = """
SELECT day, sum(high - low + 1) AS messages, count() AS conversations
FROM
(
    SELECT day, conversation_id, minMerge(first_seq) AS low, maxMerge(last_seq) AS high
    FROM conversation_days
    WHERE day >= %(since)s AND day <= %(until)s
    GROUP BY day, conversation_id
)
GROUP BY day
ORDER BY day
"""

REPORT_DAILY_SENDERS = """
SELECT day, uniqExactMerge(senders) AS senders
FROM sender_days
WHERE day >= %(since)s AND day <= %(until)s
GROUP BY day
ORDER BY day
"""

REPORT_PERIOD_SENDERS = """
SELECT uniqExactMerge(senders)
FROM sender_days
WHERE day >= %(since)s AND day <= %(until)s
"""

REPORT_DAILY_FANOUT = """
SELECT day, sum(high - low + 1) AS entries, count() AS users
FROM
(
    SELECT day, user_id, minMerge(first_sync_seq) AS low, maxMerge(last_sync_seq) AS high
    FROM user_sync_days
    WHERE day >= %(since)s AND day <= %(until)s
    GROUP BY day, user_id
)
GROUP BY day
ORDER BY day
"""

REPORT_DAILY_RECEIVERS = """
SELECT day, uniqExact(user_id) AS receivers
FROM user_sync_days
WHERE day >= %(since)s AND day <= %(until)s
GROUP BY day
ORDER BY day
"""

REPORT_PERIOD_RECEIVERS = """
SELECT uniqExact(user_id)
FROM user_sync_days
WHERE day >= %(since)s AND day <= %(until)s
"""

# a conversation's messages over a range of days are one seq range, since its
# ts_ms never decreases: max over the range - min over the range + 1
REPORT_TOP_CONVERSATIONS = """
SELECT
    conversation_id,
    maxMerge(last_seq) - minMerge(first_seq) + 1 AS messages,
    uniqExact(day) AS active_days
FROM conversation_days
WHERE day >= %(since)s AND day <= %(until)s
GROUP BY conversation_id
ORDER BY messages DESC, conversation_id
LIMIT %(limit)s
"""

CONVERSATIONS_DESCRIBED = """
SELECT conversation_id, toString(any(kind)), any(title)
FROM conversations
WHERE conversation_id IN %(conversation_ids)s
GROUP BY conversation_id
"""

# ------------------------------------------------------------------ rebuild

TABLES_IN = """
SELECT name, engine
FROM system.tables
WHERE database = %(database)s
ORDER BY name
"""

ROWS_IN = """
SELECT table, sum(rows), count()
FROM system.parts
WHERE database = %(database)s AND active
GROUP BY table
ORDER BY table
"""

REPORT_MINUTES = """
SELECT minute, messages, conversations, senders
FROM
(
    SELECT minute, sum(high - low + 1) AS messages, count() AS conversations
    FROM
    (
        SELECT minute, conversation_id, minMerge(first_seq) AS low, maxMerge(last_seq) AS high
        FROM conversation_minutes
        WHERE minute >= %(since)s
        GROUP BY minute, conversation_id
    )
    GROUP BY minute
) AS volume
ANY LEFT JOIN
(
    SELECT minute, uniqExactMerge(senders) AS senders
    FROM sender_minutes
    WHERE minute >= %(since)s
    GROUP BY minute
) AS distinct_senders USING minute
ORDER BY minute DESC
"""

STATEMENTS = {
    "HISTORY_HEAD": HISTORY_HEAD,
    "HISTORY_RANGE": HISTORY_RANGE,
    "MEMBER_LAST_ACTION": MEMBER_LAST_ACTION,
    "MEMBER_ACTIONS": MEMBER_ACTIONS,
    "CURRENT_MEMBERS": CURRENT_MEMBERS,
    "CONVERSATION": CONVERSATION,
    "SYNC_RANGE": SYNC_RANGE,
    "SYNC_FLOOR": SYNC_FLOOR,
    "SYNC_HEAD": SYNC_HEAD,
    "DEVICE_CURSORS": DEVICE_CURSORS,
    "SYNC_PARTITIONS": SYNC_PARTITIONS,
    "DROP_SYNC_PARTITION": DROP_SYNC_PARTITION,
    "USER_LARGE_GROUPS": USER_LARGE_GROUPS,
    "LARGE_GROUPS_IN": LARGE_GROUPS_IN,
    "USER_MEMBERSHIP_IN": USER_MEMBERSHIP_IN,
    "LARGE_GROUP_HEADS": LARGE_GROUP_HEADS,
    "USER_GROUP_CURSORS": USER_GROUP_CURSORS,
    "USER_LIST_PAGE": USER_LIST_PAGE,
    "USER_UNREAD": USER_UNREAD,
    "LIST_DETAILS": LIST_DETAILS,
    "CONVERSATION_HEAD": CONVERSATION_HEAD,
    "READ_POINTS": READ_POINTS,
    "MESSAGE_SENDER": MESSAGE_SENDER,
    "ROLLUP_READ_LATENCY": ROLLUP_READ_LATENCY,
    "REPORT_READ_LATENCY": REPORT_READ_LATENCY,
    "CHECK_HISTORY": CHECK_HISTORY,
    "CHECK_SYNC": CHECK_SYNC,
    "CHECK_READ_ENTRIES": CHECK_READ_ENTRIES,
    "CHECK_READ_TABLES": CHECK_READ_TABLES,
    "CHECK_LARGE_GROUPS": CHECK_LARGE_GROUPS,
    "CHECK_LARGE_MEMBERSHIP": CHECK_LARGE_MEMBERSHIP,
    "REPORT_DAILY_VOLUME": REPORT_DAILY_VOLUME,
    "REPORT_DAILY_SENDERS": REPORT_DAILY_SENDERS,
    "REPORT_PERIOD_SENDERS": REPORT_PERIOD_SENDERS,
    "REPORT_DAILY_FANOUT": REPORT_DAILY_FANOUT,
    "REPORT_DAILY_RECEIVERS": REPORT_DAILY_RECEIVERS,
    "REPORT_PERIOD_RECEIVERS": REPORT_PERIOD_RECEIVERS,
    "REPORT_TOP_CONVERSATIONS": REPORT_TOP_CONVERSATIONS,
    "REPORT_MINUTES": REPORT_MINUTES,
    "CONVERSATIONS_DESCRIBED": CONVERSATIONS_DESCRIBED,
    "TABLES_IN": TABLES_IN,
    "ROWS_IN": ROWS_IN,
}
