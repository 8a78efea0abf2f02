"""The log: Kafka, where every event lives first.

Owns the Kafka clients (consumers, idempotent and transactional producers, the
shared batch writer), the topic catalogue (names, keys, partitions, retention)
and the dead-letter record format. May import: ``pipeline.settings``,
``pipeline.errors``, ``pipeline.model``.
"""
