"""Prometheus metrics: what an operator watches (GET /metrics)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import Final

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

__all__ = [
    "ACKS",
    "COMMITS",
    "COMMITTED_WRITES",
    "CONNECTIONS",
    "REGISTRY",
    "REPLAYS",
    "SEND_QUEUE_BYTES",
    "AckStats",
    "ReplayStats",
]

REGISTRY: Final = CollectorRegistry(auto_describe=True)


class AckStats:
    """parley_ack_seconds and parley_messages_stored: plain numbers that the event loop
    bumps per message and that become Prometheus samples only when scraped.

    prometheus_client's Histogram and Counter take a lock on every update, which cost
    more than the rest of an ack's bookkeeping; the loop is one thread, and scrapes run
    on it too, so plain integers are safe here.
    """

    BOUNDS: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BOUNDS) + 1)  # the last one is +Inf
        self.seconds = 0.0
        self.stored = 0

    def observe(self, seconds: float, *, created: bool) -> None:
        self.observe_all(seconds, 1, int(created))

    def observe_all(self, seconds: float, acks: int, stored: int) -> None:
        """`acks` sends that each waited `seconds`, of which `stored` were new."""
        self.counts[bisect_left(self.BOUNDS, seconds)] += acks
        self.seconds += seconds * acks
        self.stored += stored

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        labels = [str(bound) for bound in self.BOUNDS] + ["+Inf"]
        yield HistogramMetricFamily(
            "parley_ack_seconds",
            "From a send reaching the store to its COMMIT",
            buckets=list(zip(labels, accumulate(self.counts), strict=True)),
            sum_value=self.seconds,
        )
        yield CounterMetricFamily(
            "parley_messages_stored", "Messages stored (acked) by this node", value=self.stored
        )


ACKS: Final = AckStats()
REGISTRY.register(ACKS)


class _LabelledCounts:
    """A counter family kept as plain integer attributes, one per value of its one label
    (as `AckStats`: no lock per update), exported at scrape time."""

    name: str
    help: str
    label: str
    values: tuple[str, ...]  # the label's values, each also the attribute holding its count

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.help, labels=[self.label])
        for value in self.values:
            family.add_metric([value], getattr(self, value))
        yield family


class ReplayStats(_LabelledCounts):
    """parley_replays: joins with `since` that replayed something, by where the events came
    from (the recent events in memory, core/recent.py, or the store): a reconnect storm
    counts thousands at once."""

    name = "parley_replays"
    help = "Joins with since that replayed events, by source: memory (recent) or store"
    label = "source"
    values = ("memory", "store")

    def __init__(self) -> None:
        self.memory = 0
        self.store = 0


REPLAYS: Final = ReplayStats()
REGISTRY.register(REPLAYS)


class OpenedStats(_LabelledCounts):
    """parley_sockets_opened: WebSockets opened, by which way their handshake took: the
    front door (server/front.py) or aiohttp's request handling."""

    name = "parley_sockets_opened"
    help = "WebSockets opened, by the way their handshake took: front (the front door) or aiohttp"
    label = "by"
    values = ("front", "aiohttp")

    def __init__(self) -> None:
        self.front = 0
        self.aiohttp = 0


OPENED: Final = OpenedStats()
REGISTRY.register(OPENED)
CONNECTIONS: Final = Gauge("parley_connections", "Open WebSocket connections", registry=REGISTRY)
SEND_QUEUE_BYTES: Final = Gauge(
    "parley_send_queue_bytes",
    "Bytes written but not yet taken by clients' sockets, summed (sampled at scrape)",
    registry=REGISTRY,
)
COMMITS: Final = Gauge(
    "parley_store_commits",
    "Write transactions committed by the SQLite writer since start (sampled at scrape)",
    registry=REGISTRY,
)
COMMITTED_WRITES: Final = Gauge(
    "parley_store_committed_writes",
    "Writes (messages and others) in those transactions: their ratio is the group-commit batch",
    registry=REGISTRY,
)
