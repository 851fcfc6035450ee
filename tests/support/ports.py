"""Free loopback ports for the servers the tests start, a slice of its own per xdist worker."""

from __future__ import annotations

import os
import random
import socket

__all__ = ["free_low_port", "port_slice"]


def port_slice(low: int, high: int) -> tuple[int, int]:
    """This pytest-xdist worker's slice of [low, high), or all of it outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not (worker.startswith("gw") and worker[2:].isdigit()) or count <= 1:
        return low, high
    span = (high - low) // count
    start = low + int(worker[2:]) % count * span
    return start, start + span


def free_low_port() -> int:
    """A free loopback port below Linux's ephemeral range (32768-60999).

    A port the kernel hands out with bind(0) is an ephemeral one, which any client socket may
    take as its source port before our server binds it; below the range that cannot happen.
    Under pytest-xdist each worker draws from its own slice of the range: a port is free here
    until the server we start binds it, and another worker must not pick it meanwhile (its
    health check would then find our server, and its test talk to it).
    """
    low, high = port_slice(20000, 32700)
    while True:
        port = random.randrange(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
