"""The domain model: events and the pure rules of the pipeline.

Owns the event schemas and their one codec (orjson), the framing that lets a
stage splice an event's bytes instead of re-encoding them, sequencing (dense
``seq``, membership, dedupe), diffusion (who receives what), syncing (dense
``sync_seq``, forward-only read markers), unread counts from seqs, presence
records, and the in-memory state those rules keep.
Everything here is a plain function or value over values: no I/O, no clock
other than the times it is handed, no settings. May import: ``pipeline.errors``
and the standard library / orjson only.
"""
