"""Reading a ``/metrics`` page back: lag, percentiles, counters (for ``imstream status``).

Percentiles come from a histogram's cumulative buckets the way Prometheus's
``histogram_quantile`` computes them: linear interpolation inside the bucket
that holds the rank. Over a whole process's life, not a recent window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

LabelKey = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    samples: dict[str, dict[LabelKey, float]] = field(default_factory=lambda: defaultdict(dict))

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for key, v in self.samples.get(name, {}).items() if want <= set(key))

    def by(self, name: str, label: str) -> dict[str, float]:
        """Samples of ``name`` summed by one label's values."""
        sums: dict[str, float] = defaultdict(float)
        for key, v in self.samples.get(name, {}).items():
            sums[dict(key).get(label, "")] += v
        return dict(sums)

    def quantile(self, q: float, histogram: str, **labels: str) -> float | None:
        """The ``q`` quantile of a histogram (its series matching ``labels`` merged);
        None without observations."""
        want = set(labels.items())
        buckets: dict[float, float] = defaultdict(float)
        for key, count in self.samples.get(histogram + "_bucket", {}).items():
            if want <= set(key):
                buckets[float(dict(key)["le"])] += count
        return quantile(q, sorted(buckets.items()))


def since(before: Scrape, after: Scrape) -> Scrape:
    """What happened between two scrapes of one process: counters and histogram
    buckets as differences (for percentiles of a time window)."""
    window = Scrape()
    for name, series in after.samples.items():
        earlier = before.samples.get(name, {})
        for key, value in series.items():
            window.samples[name][key] = value - earlier.get(key, 0.0)
    return window


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over (upper bound, cumulative count) pairs, sorted."""
    if not cumulative or cumulative[-1][1] == 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower  # the highest finite bound: all Prometheus can say
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def parse(text: str) -> Scrape:
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            scrape.samples[sample.name][key] = sample.value
    return scrape
