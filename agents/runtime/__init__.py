"""The runtime the agents share: how records move, exactly once.

``transactional``: Kafka-to-Kafka stages whose state, output and offsets commit
in one Kafka transaction per partition. ``sink``: Kafka-to-ClickHouse sinks that
write idempotently and commit offsets after the write. ``health``: the worker's
``/health`` and ``/ready``. May import ``pipeline`` below the gateway (log,
store, model, settings, errors); never the agents themselves.
"""
