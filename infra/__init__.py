"""Starting the real servers locally: Kafka (KRaft, jars from Maven Central) and
ClickHouse (Debian's package), plus the topic and schema bootstrap.

Used by ``imstream up/down/status`` and the test fixtures; ``docker-compose.yml``
is the same stack for those who have Docker. May import ``pipeline.log``,
``pipeline.store``, ``pipeline.settings`` and ``pipeline.errors``; never
``agents``, ``bench`` or the gateway.
"""
