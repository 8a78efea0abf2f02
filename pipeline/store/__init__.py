"""The store: ClickHouse, the projections of the log.

Owns the connection (a small pool, with the error mapping), the schema and its
versioned migrations (SQL that runs on ClickHouse 18.16 and on a modern
server), every query the project runs, and the rows the sinks write. May
import: ``pipeline.settings``, ``pipeline.errors``, ``pipeline.model``.
"""
