"""Operations: what an operator runs against a deployment.

Owns the invariant checker (``imstream check``), rebuilding the store from the
log, the analytics reports, tailing topics, the live probe and the status of
running processes (from their metrics), and the table and progress output
those commands print. May import: ``pipeline.sdk``, ``pipeline.read``,
``pipeline.store``, ``pipeline.log``, ``pipeline.observe``, ``pipeline.model``,
``pipeline.settings``, ``pipeline.errors``; never ``agents``, ``infra``,
``bench`` or the gateway.
"""
