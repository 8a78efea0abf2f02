"""The read side: what devices and members read from the store.

Owns history paging (the roaming store, by ``seq``), sync pulls by cursor (the
sync timelines, never past a hole, "cursor expired" past retention) and the
read of large groups (read diffusion: a member's periods and cursors), the
conversation list with unread counts, and receipts (read by N of M). May
import: ``pipeline.store``, ``pipeline.model``, ``pipeline.settings``,
``pipeline.errors``.
"""
