"""Prometheus metrics: what an operator watches (GET /metrics)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "ACK_SECONDS",
    "COMMITS",
    "COMMITTED_WRITES",
    "CONNECTIONS",
    "MESSAGES",
    "REGISTRY",
    "SEND_QUEUE_BYTES",
]

REGISTRY: Final = CollectorRegistry(auto_describe=True)

CONNECTIONS: Final = Gauge("parley_connections", "Open WebSocket connections", registry=REGISTRY)
MESSAGES: Final = Counter(
    "parley_messages_stored", "Messages stored (acked) by this node", registry=REGISTRY
)
ACK_SECONDS: Final = Histogram(
    "parley_ack_seconds",
    "From a send reaching the store to its COMMIT",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
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
