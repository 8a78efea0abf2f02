-- Read latency (docs/read-state.md): for each message a reader read, the time from
-- the message to the reader's first read marker covering it, by the hour of the
-- marker, as a histogram: bucket b counts latencies in [2^b, 2^(b+1)) ms (bucket
-- 0 also holds those under 1 ms). A message covered by a marker is one after the
-- reader's previous marker (and after their join), not their own.
--
-- The worker's retention agent recomputes the last hours from the sync entries
-- and the messages (queries.ROLLUP_READ_LATENCY); a recomputed hour's rows
-- replace the earlier ones (the version is when they were computed), so running
-- it again changes nothing. Daily figures: queries.REPORT_READ_LATENCY,
-- `imstream stats read-latency`.

CREATE TABLE IF NOT EXISTS read_latency_hours
(
    hour DateTime('UTC'),
    bucket UInt8,
    reads UInt64,
    computed_ms UInt64
)
ENGINE = ReplacingMergeTree(computed_ms)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, bucket);
