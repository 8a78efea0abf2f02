"""The dashboard and the scrape config name only metrics and ports that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.observe.prometheus import PrometheusSensor
from pipeline.observe.scrape import parse
from pipeline.settings import Settings

INFRA = Path(__file__).resolve().parents[3] / "infra"


def exposed_names() -> set[str]:
    sensor = PrometheusSensor("worker")
    sensor.on_socket_write(b"1,2,3,4,5", 6)
    sensor.on_stored("store", [b"1,2,3"], 4)
    sensor.on_reopen("sync", 0, "fenced")
    sensor.on_restore("sync", 0, 0.1, 10)
    sensor.on_batch("sync", 0, 1, 1, 0.01)
    sensor.on_dead_letters("sync", ["invalid"])
    sensor.on_insert("store", 1, 0.1)
    sensor.on_insert_retry("store")
    sensor.on_pushed("entry", 1)
    sensor.on_request("/v1/sync", "GET", 200, 0.01)
    for name in ("imstream_lag_records", "imstream_gateway_connections", "imstream_gateway_users"):
        sensor.watch(name, "", lambda: [({}, 1.0)])
    return set(parse(sensor.exposition().decode()).samples)


def test_every_metric_on_the_dashboard_is_exposed() -> None:
    dashboard = json.loads((INFRA / "grafana/dashboards/imstream.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\b(?:imstream|process)_\w+", expr)}
    assert used
    assert used <= exposed_names(), used - exposed_names()


def test_the_scrape_config_targets_the_default_ports() -> None:
    config = (INFRA / "prometheus/prometheus.yml").read_text()
    defaults = Settings.from_env({})
    assert f'"worker:{defaults.worker.health_port}"' in config
    assert f'"gateway:{defaults.gateway.port}"' in config
    compose = (INFRA / "docker-compose.yml").read_text()
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in compose
    assert "./grafana/dashboards:/var/lib/grafana/dashboards" in compose
