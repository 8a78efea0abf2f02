"""A ClickHouse server from Debian's ``clickhouse-server`` package, run with a
project-local config and data directory in ``<stack dir>/clickhouse``."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from infra import process
from pipeline.errors import MissingToolError, StackError
from pipeline.settings import Settings

PACKAGE = "clickhouse-server"
APT_HINT = "apt-get is needed to install Debian's clickhouse-server package"


@dataclass(frozen=True, slots=True)
class ClickHouseServer:
    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.stack.dir / "clickhouse"

    @property
    def log(self) -> Path:
        return self.home / "stdout.log"

    @property
    def pidfile(self) -> Path:
        return self.home / "clickhouse.pid"

    def pid(self) -> int | None:
        return process.read_pid(self.pidfile)

    def answering(self) -> bool:
        return process.port_open(self.settings.clickhouse.host, self.settings.clickhouse.port)

    def binary(self) -> str:
        """The server binary, installing Debian's package first if it is missing."""
        try:
            return process.which(PACKAGE, "not installed")
        except MissingToolError:
            install_package()
            return process.which(PACKAGE, f"`apt-get install {PACKAGE}` did not provide it")

    def start(self) -> str:
        if self.pid() is not None:
            return f"clickhouse: already running (pid {self.pid()})"
        ch = self.settings.clickhouse
        server = self.binary()
        process.require_free(
            ch.host,
            [ch.port, ch.http_port],
            "clickhouse",
            "IMSTREAM_CLICKHOUSE_PORT / IMSTREAM_CLICKHOUSE_HTTP_PORT",
        )
        config = self._write_config()
        pid = process.spawn(
            [server, f"--config-file={config}"], log=self.log, pidfile=self.pidfile, cwd=self.home
        )
        process.wait_until(
            self.answering,
            timeout_s=self.settings.stack.start_timeout_s,
            what=f"ClickHouse on {ch.host}:{ch.port}",
            pid=pid,
            log=self.home / "server.err.log",
        )
        return f"clickhouse: started on {ch.host}:{ch.port} (pid {pid})"

    def stop(self) -> str:
        was = process.stop(self.pidfile)
        return "clickhouse: stopped" if was else "clickhouse: not running"

    def kill(self) -> None:
        process.kill(self.pidfile)

    def _write_config(self) -> Path:
        for sub in ("data", "tmp", "user_files", "format_schemas"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        ch = self.settings.clickhouse
        values = {
            "@HOME@": str(self.home.resolve()),
            "@HOST@": ch.host,
            "@PORT@": str(ch.port),
            "@HTTP_PORT@": str(ch.http_port),
        }
        for name in ("config.xml", "users.xml"):
            text = resources.files("infra").joinpath(f"clickhouse/{name}").read_text("utf-8")
            for key, value in values.items():
                text = text.replace(key, value)
            (self.home / name).write_text(text)
        return self.home / "config.xml"


def install_package() -> None:
    """``apt-get install clickhouse-server`` (as root, or through passwordless sudo)."""
    apt = process.which("apt-get", APT_HINT)
    prefix: list[str] = []
    if os.geteuid() != 0:
        prefix = [process.which("sudo", f"run as root, or `sudo apt-get install {PACKAGE}`"), "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "--no-install-recommends", PACKAGE]
    result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        subprocess.run([*prefix, apt, "update"], capture_output=True, env=env, check=False)
        result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise StackError(f"installing {PACKAGE} failed:\n{result.stderr[-2000:]}")
