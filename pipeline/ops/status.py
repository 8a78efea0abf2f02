"""The running processes as ``imstream status`` shows them, from their ``/metrics``.

For a worker: each agent's lag (records committed upstream and not processed
yet) and the p99 from send to stored / pullable; for a gateway: connections,
entries pushed and dropped, and the p99 of send → socket with each hop's p99.
Percentiles cover the process's whole life (its histograms are cumulative).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable

from pipeline.model.hops import SOCKET, STAMPS
from pipeline.observe.scrape import Scrape, parse
from pipeline.settings import Settings

SCRAPE_TIMEOUT_S = 2.0
LATENCY = "imstream_latency_seconds"


def endpoints(settings: Settings, extra: Iterable[str] = ()) -> list[str]:
    """The metrics URLs of this machine's worker and gateway (as configured), and ``extra``."""
    urls = []
    if settings.worker.health_port > 0:
        urls.append(f"http://{settings.worker.health_host}:{settings.worker.health_port}/metrics")
    urls.append(f"http://{settings.gateway.host}:{settings.gateway.port}/metrics")
    return urls + [u if u.endswith("/metrics") else u.rstrip("/") + "/metrics" for u in extra]


def lines(urls: Iterable[str]) -> list[str]:
    return [describe(url, fetch(url)) for url in urls]


def fetch(url: str) -> Scrape | str:
    """The scraped metrics, or why there are none."""
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:  # noqa: S310
            return parse(response.read().decode())
    except urllib.error.HTTPError as exc:
        return f"answers {exc.code} (metrics off?)"
    except (urllib.error.URLError, OSError):
        return "not running"


def describe(url: str, scrape: Scrape | str) -> str:
    where = url.removesuffix("/metrics")
    if isinstance(scrape, str):
        return f"process at {where}: {scrape}"
    if scrape.value("imstream_process_info", role="gateway"):
        return f"gateway at {where}: {_gateway(scrape)}"
    return f"worker at {where}: {_worker(scrape)}"


def _worker(scrape: Scrape) -> str:
    lag = scrape.by("imstream_lag_records", "agent")
    lags = ", ".join(f"{agent} {int(n)}" for agent, n in sorted(lag.items())) or "no partitions"
    p99 = ", ".join(
        f"{path.replace('_', ' ')} {_ms(scrape.quantile(0.99, LATENCY, path=path))}"
        for path in ("send_to_stored", "send_to_pullable")
    )
    return f"lag {lags}; p99 {p99}"


def _gateway(scrape: Scrape) -> str:
    connections = int(scrape.value("imstream_gateway_connections"))
    pushed = int(scrape.value("imstream_gateway_pushes_total"))
    dropped = int(scrape.value("imstream_gateway_push_dropped_total"))
    e2e = scrape.quantile(0.99, LATENCY, path="send_to_socket")
    hop_p99 = ", ".join(
        f"{hop} {_ms(scrape.quantile(0.99, 'imstream_hop_seconds', hop=hop, at='gateway'))}"
        for hop in (*STAMPS[1:], SOCKET)
    )
    return (
        f"{connections} connections, {pushed} entries pushed, {dropped} dropped; "
        f"p99 send to socket {_ms(e2e)} (hops: {hop_p99})"
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"
