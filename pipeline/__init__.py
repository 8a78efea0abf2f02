"""imstream: an event-sourced IM message pipeline on Kafka and ClickHouse."""
