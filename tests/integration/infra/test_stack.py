"""The local stack: idempotent up/down, and clear errors for bad configuration."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from infra.clickhouse import ClickHouseServer
from infra.kafka import KafkaBroker
from infra.process import alive, port_open
from pipeline.errors import MissingToolError, PortInUseError, StartTimeoutError
from pipeline.settings import Settings
from pipeline.store.clickhouse import wait_for_clickhouse
from tests.support import ROOT, other_stack


@pytest.fixture
def squatter() -> Iterator[int]:
    """A port held by something that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def stack_cli(settings: Settings, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", command],
        cwd=ROOT,
        env=settings.child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_up_twice_is_harmless_and_down_leaves_nothing(stack: Settings, tmp_path: Path) -> None:
    settings = other_stack(stack, tmp_path / "stack")
    try:
        first = stack_cli(settings, "up")
        assert first.returncode == 0, first.stderr
        assert "kafka: started" in first.stdout
        assert "clickhouse: started" in first.stdout
        pids = [KafkaBroker(settings).pid(), ClickHouseServer(settings).pid()]
        second = stack_cli(settings, "up")
        assert second.returncode == 0, second.stderr
        assert "kafka: already running" in second.stdout
        assert "migrations applied: none pending" in second.stdout
        assert "topics created: none missing" in second.stdout
        assert [KafkaBroker(settings).pid(), ClickHouseServer(settings).pid()] == pids
        status = stack_cli(settings, "status")
        assert status.stdout.count("answering") == 2
    finally:
        down = stack_cli(settings, "down")
    assert down.returncode == 0, down.stderr
    assert all(pid is not None and not alive(pid) for pid in pids)
    host, port = settings.kafka.bootstrap.split(":")
    assert not port_open(host, int(port))
    assert not port_open(settings.clickhouse.host, settings.clickhouse.port)


def test_a_port_in_use_is_named(stack: Settings, tmp_path: Path, squatter: int) -> None:
    settings = other_stack(stack, tmp_path / "stack")
    taken = settings.replace(kafka=replace(settings.kafka, bootstrap=f"127.0.0.1:{squatter}"))
    with pytest.raises(PortInUseError, match=f"port {squatter} on 127.0.0.1 is already in use"):
        KafkaBroker(taken).start()
    taken = settings.replace(clickhouse=replace(settings.clickhouse, port=squatter))
    result = stack_cli(taken, "up")
    assert result.returncode == 2
    assert f"port {squatter} answers, but not as ClickHouse" in result.stderr
    assert not any(tmp_path.glob("stack/*/*.pid"))


def test_missing_java_is_named(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match="java not found on PATH: install a Java"):
        KafkaBroker(other_stack(stack, tmp_path / "stack")).start()


def test_clickhouse_not_answering_times_out(stack: Settings, squatter: int) -> None:
    silent = stack.replace(
        clickhouse=replace(stack.clickhouse, port=squatter, connect_timeout_s=0.5)
    )
    started = time.monotonic()
    with pytest.raises(StartTimeoutError, match="ClickHouse did not answer within 1s"):
        wait_for_clickhouse(silent, timeout_s=1)
    assert time.monotonic() - started < 10


def test_server_start_timeout_is_an_error_not_a_hang(stack: Settings, tmp_path: Path) -> None:
    settings = other_stack(stack, tmp_path / "stack", start_timeout_s=0.01)
    server = ClickHouseServer(settings)
    try:
        with pytest.raises(StartTimeoutError, match="did not answer within 0s"):
            server.start()
    finally:
        server.stop()
    assert server.pid() is None
