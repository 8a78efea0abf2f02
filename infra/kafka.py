"""A single-node KRaft Kafka broker run from the jars on Maven Central.

The jars are fetched once by Maven into ``<cache_dir>/kafka-<version>/libs``
(outside the clone, shared by every checkout); the broker's config, data and
log live in ``<stack dir>/kafka``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from infra import process
from pipeline.errors import StackError
from pipeline.settings import Settings

JAVA_HINT = "install a Java 11+ runtime, e.g. `apt-get install -y openjdk-17-jre-headless`"
MVN_HINT = "install Maven (`apt-get install -y maven`) to fetch the Kafka jars once"
READY_MARK = "Kafka Server started"


@dataclass(frozen=True, slots=True)
class KafkaBroker:
    settings: Settings

    @property
    def host(self) -> str:
        return self.settings.kafka.bootstrap.split(",")[0].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.settings.kafka.bootstrap.split(",")[0].rsplit(":", 1)[1])

    @property
    def home(self) -> Path:
        return self.settings.stack.dir / "kafka"

    @property
    def libs(self) -> Path:
        return self.settings.stack.cache_dir / f"kafka-{self.settings.stack.kafka_version}" / "libs"

    @property
    def log(self) -> Path:
        return self.home / "kafka.log"

    @property
    def pidfile(self) -> Path:
        return self.home / "kafka.pid"

    def pid(self) -> int | None:
        return process.read_pid(self.pidfile)

    def answering(self) -> bool:
        return process.port_open(self.host, self.port)

    def fetch_jars(self) -> Path:
        """Download the broker's classpath with Maven, once per version."""
        done = self.libs / ".complete"
        if done.exists():
            return self.libs
        mvn = process.which("mvn", MVN_HINT)
        work = self.libs.parent
        work.mkdir(parents=True, exist_ok=True)
        pom = resources.files("infra").joinpath("kafka/pom.xml").read_text("utf-8")
        (work / "pom.xml").write_text(
            pom.replace("@KAFKA_VERSION@", self.settings.stack.kafka_version)
        )
        staging = work / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"fetching Kafka {self.settings.stack.kafka_version} with Maven failed:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        done.touch()
        return self.libs

    def start(self) -> str:
        if self.pid() is not None:
            return f"kafka: already running (pid {self.pid()})"
        java = process.which("java", JAVA_HINT)
        process.require_free(
            self.host,
            [self.port, self.settings.stack.kafka_controller_port],
            "kafka",
            "IMSTREAM_KAFKA_BOOTSTRAP / IMSTREAM_STACK_KAFKA_CONTROLLER_PORT",
        )
        libs = self.fetch_jars()
        config = self._write_config()
        self._format(java, libs, config)
        pid = process.spawn(
            [
                java,
                f"-Xmx{self.settings.stack.kafka_heap}",
                "-Xms128m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(config),
            ],
            log=self.log,
            pidfile=self.pidfile,
            cwd=self.home,
        )
        process.wait_until(
            self._ready,
            timeout_s=self.settings.stack.start_timeout_s,
            what=f"Kafka broker on {self.host}:{self.port}",
            pid=pid,
            log=self.log,
        )
        return f"kafka: started on {self.host}:{self.port} (pid {pid})"

    def stop(self) -> str:
        was = process.stop(self.pidfile)
        return "kafka: stopped" if was else "kafka: not running"

    def kill(self) -> None:
        process.kill(self.pidfile)

    def _ready(self) -> bool:
        return self.answering() and READY_MARK in process.tail(self.log, 200)

    def _write_config(self) -> Path:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        template = resources.files("infra").joinpath("kafka/server.properties").read_text("utf-8")
        values = {
            "@HOST@": self.host,
            "@PORT@": str(self.port),
            "@CONTROLLER_PORT@": str(self.settings.stack.kafka_controller_port),
            "@DATA_DIR@": str(data),
        }
        for name, value in values.items():
            template = template.replace(name, value)
        config = self.home / "server.properties"
        config.write_text(template)
        return config

    def _format(self, java: str, libs: Path, config: Path) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_file = self.home / "cluster.id"
        if not cluster_file.exists():
            cluster_file.write_text(
                self._tool(java, libs, ["random-uuid"]).strip().splitlines()[-1]
            )
        self._tool(
            java,
            libs,
            [
                "format",
                "-t",
                cluster_file.read_text().strip(),
                "-c",
                str(config),
                "--ignore-formatted",
            ],
        )

    def _tool(self, java: str, libs: Path, args: list[str]) -> str:
        result = subprocess.run(
            [
                java,
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                f"{libs}/*",
                "kafka.tools.StorageTool",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"kafka-storage {args[0]} failed:\n{result.stderr[-2000:]}")
        return result.stdout
