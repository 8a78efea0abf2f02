from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.log.topics import catalogue
from pipeline.settings import Settings, env_name


def test_defaults_describe_the_local_stack() -> None:
    settings = Settings.from_env({})
    assert settings.kafka.bootstrap == "127.0.0.1:9092"
    assert settings.clickhouse.port == 9000
    assert settings.pipeline.sync_retention_days == 7


def test_values_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {
            "IMSTREAM_KAFKA_BOOTSTRAP": "10.0.0.1:9093",
            "IMSTREAM_CLICKHOUSE_PORT": "9440",
            "IMSTREAM_PIPELINE_SYNC_RETENTION_DAYS": "3",
            "IMSTREAM_CLICKHOUSE_CONNECT_TIMEOUT_S": "1.5",
            "IMSTREAM_STACK_DIR": "/tmp/somewhere",
        }
    )
    assert settings.kafka.bootstrap == "10.0.0.1:9093"
    assert settings.clickhouse.port == 9440
    assert settings.clickhouse.connect_timeout_s == 1.5
    assert settings.pipeline.sync_retention_days == 3
    assert settings.stack.dir == Path("/tmp/somewhere")


def test_wrong_type_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="IMSTREAM_CLICKHOUSE_PORT='ninety' is not a valid int"):
        Settings.from_env({"IMSTREAM_CLICKHOUSE_PORT": "ninety"})


def test_unknown_variable_is_a_typo() -> None:
    with pytest.raises(ConfigError, match="IMSTREAM_KAFKA_BOOTSTRAPS"):
        Settings.from_env({"IMSTREAM_KAFKA_BOOTSTRAPS": "x:1"})


def test_the_test_suites_variables_are_not_settings() -> None:
    # the fault suite prints IMSTREAM_FAULT_SEED=<n> to replay a run: it must load
    settings = Settings.from_env({"IMSTREAM_FAULT_SEED": "42", "IMSTREAM_TEST_KEEP_STACK": "1"})
    assert settings == Settings.from_env({})
    with pytest.raises(ConfigError, match="IMSTREAM_FAULT_SEEDS"):
        Settings.from_env({"IMSTREAM_FAULT_SEEDS": "42"})


def test_inconsistent_values_fail_fast() -> None:
    with pytest.raises(ConfigError, match="SYNC_RETENTION_DAYS must be >= 1"):
        Settings.from_env({"IMSTREAM_PIPELINE_SYNC_RETENTION_DAYS": "0"})
    with pytest.raises(ConfigError, match="CLICKHOUSE_DATABASE must be an identifier"):
        Settings.from_env({"IMSTREAM_CLICKHOUSE_DATABASE": "drop table"})


def test_env_names_follow_group_and_field() -> None:
    assert env_name("kafka", "bootstrap") == "IMSTREAM_KAFKA_BOOTSTRAP"


def test_catalogue_applies_prefix_partitions_and_retention() -> None:
    settings = Settings.from_env(
        {
            "IMSTREAM_TOPICS_PREFIX": "dev.",
            "IMSTREAM_TOPICS_USER_PARTITIONS": "12",
            "IMSTREAM_PIPELINE_SYNC_RETENTION_DAYS": "2",
        }
    )
    topics = catalogue(settings)
    assert topics.messages.name == "dev.im.messages"
    assert topics.sync.partitions == 12
    assert topics.inbox.partitions == 12
    assert topics.sync.config()["retention.ms"] == str(2 * 86_400_000)
    assert topics.messages.config()["retention.ms"] == "-1"
    assert topics.sequencer_state.config()["cleanup.policy"] == "compact"
    # a stage's changelog is co-partitioned with its input
    assert topics.sequencer_state.partitions == topics.messages.partitions
    assert topics.sync_state.partitions == topics.sync.partitions
    assert len({t.name for t in topics.all()}) == len(topics.all())


def test_to_env_round_trips() -> None:
    settings = Settings.from_env({"IMSTREAM_TOPICS_PREFIX": "p.", "IMSTREAM_CLICKHOUSE_PORT": "1"})
    assert Settings.from_env(settings.to_env()) == settings
