"""The log: Kafka, where every event lives first.

Owns the Kafka clients (consumers, idempotent and transactional producers, the
shared batch writer), the topic catalogue (names, keys, partitions, retention),
the dead-letter record format and the published JSON Schemas of the records.
May import: ``pipeline.settings``, ``pipeline.errors``, ``pipeline.model``.
"""
