"""Pure helpers of the load generator: payload marker, percentiles, rate steps, checks.

Nothing here touches the network or the clock, so it is unit-tested directly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "MARK",
    "check_sequence",
    "is_sustained",
    "make_text",
    "message_seq",
    "parse_marker",
    "percentile",
    "rate_steps",
    "ratio",
    "summarize_ns",
]

#: Every benchmark message text starts with this marker, then
#: ``SENDER:SEQ:SEND_NS:`` and padding. The marker is plain ASCII that JSON
#: leaves as it is, so the same bytes are found in a parley.v1 JSON frame and
#: in a plain text frame of the peers.
MARK: Final = "~b~"
_MARK_B: Final = MARK.encode()
_MARK_LEN: Final = len(_MARK_B)


def make_text(sender: int, seq: int, send_ns: int, size: int = 64) -> str:
    """The text of one benchmark message, padded with ``x`` to at least `size` characters."""
    head = f"{MARK}{sender}:{seq}:{send_ns}:"
    if len(head) >= size:
        return head
    return head + "x" * (size - len(head))


def parse_marker(
    data: bytes, start: int = 0, end: int | None = None
) -> tuple[int, int, int] | None:
    """(sender, seq, send_ns) from a frame that carries a benchmark text, else None; with
    `start`/`end`, of the frame that is data[start:end] (no copy of it is made)."""
    stop = len(data) if end is None else end
    at = data.find(_MARK_B, start, stop)
    if at < 0:
        return None
    parts = data[at + _MARK_LEN : min(at + _MARK_LEN + 64, stop)].split(b":", 3)
    if len(parts) < 4:
        return None
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None


_MESSAGE_HEAD: Final = b'{"type":"message",'
_SEQ_KEY: Final = b'"seq":'
_DIGITS: Final = re.compile(rb"[0-9]+")


def message_seq(data: bytes, start: int = 0, end: int | None = None) -> int | None:
    """The seq of a parley.v1 `message` frame as Parley encodes it (its type first, the seq
    among the next fields), without decoding the JSON; None for any other frame. With
    `start`/`end`: of the frame that is data[start:end] (no copy of it is made)."""
    stop = len(data) if end is None else end
    if not data.startswith(_MESSAGE_HEAD, start, stop):
        return None
    at = data.find(_SEQ_KEY, start + len(_MESSAGE_HEAD), min(start + 200, stop))
    if at < 0:
        return None
    digits = _DIGITS.match(data, at + len(_SEQ_KEY), stop)
    return int(digits.group()) if digits else None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence; NaN when empty."""
    if not sorted_values:
        return math.nan
    if q <= 0:
        return float(sorted_values[0])
    rank = math.ceil(q / 100.0 * len(sorted_values))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarize_ns(samples_ns: Iterable[int]) -> dict[str, float]:
    """{"count","p50","p90","p99","p999","max"}: percentiles in milliseconds of latencies
    in ns."""
    values = sorted(samples_ns)
    out: dict[str, float] = {"count": float(len(values))}
    for key, q in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("max", 100.0)):
        out[key] = percentile(values, q) / 1e6
    return out


def rate_steps(start: float, factor: float, maximum: float) -> list[float]:
    """Rising rates start, start*factor, ... up to and including the first one >= maximum."""
    if start <= 0 or factor <= 1 or maximum < start:
        raise ValueError("need 0 < start <= maximum and factor > 1")
    steps = [start]
    while steps[-1] < maximum:
        steps.append(min(steps[-1] * factor, maximum))
    return steps


def is_sustained(
    offered_per_s: float,
    delivered_per_s: float,
    p99_ms: float,
    *,
    min_fraction: float = 0.95,
    max_p99_ms: float = 1000.0,
) -> bool:
    """A step is sustained when nearly all offered deliveries arrived within the window
    and the tail latency stayed bounded (a growing backlog shows as a growing p99)."""
    if offered_per_s <= 0:
        return False
    if math.isnan(p99_ms):
        return False
    return delivered_per_s >= min_fraction * offered_per_s and p99_ms <= max_p99_ms


def check_sequence(received: Sequence[int], first: int, last: int) -> tuple[int, int]:
    """(lost, doubled) of the seqs one client received against the full range first..last.

    lost: values of the range never received; doubled: receptions beyond the first of a
    value (including values outside the range that arrived twice).
    """
    seen: set[int] = set()
    doubled = 0
    for seq in received:
        if seq in seen:
            doubled += 1
        else:
            seen.add(seq)
    lost = sum(1 for seq in range(first, last + 1) if seq not in seen)
    return lost, doubled


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None:
        return None
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return None
    return numerator / denominator
