"""imstream: an event-sourced IM message pipeline on Kafka and ClickHouse.

The library, by role (each subpackage's docstring says what it owns and what it
may import; ``make lint`` checks it with import-linter):

    cli       the command line (the only part that may import agents/infra/bench)
    gateway   HTTP API, WebSocket push, tokens       ops   checker, rebuild, reports, tail
    sdk       producer SDK, API and sync clients     read  history, sync pulls, large groups
    store     ClickHouse: schema, queries, rows      log   Kafka: clients, topics, dead letters
    observe   the sensor, Prometheus metrics, logging
    model     events, codec and the pure rules       settings, errors: the base of everything
"""
