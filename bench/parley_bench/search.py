"""The `search` workload (issue 14): GET /api/search latency over the `hello` workload's
seeded database (hello.py: a million messages on SQLite at full size, cached between runs).

The queries are what a user types into a search box: whole words and their prefixes (as a
search-as-you-type client sends them, from one letter on), one to three words, some that
match nothing, some in one room. The seed's vocabulary is small, so every word is in about
a third of the messages: each query word meets a long list, the slow case of a prefix.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import time
import urllib.parse
from typing import Any, Final

from parley_bench.hello import WORDS, SeedSpec, reader_token, room_plan
from parley_bench.servers import ServerProc, cpu_seconds
from parley_bench.stats import summarize_ns

__all__ = ["measure_search", "search_queries"]

_RNG_SEED: Final = 14
LIMIT: Final = 20  # the contract's default page, as the web client asks for


def search_queries(spec: SeedSpec, count: int) -> list[dict[str, str]]:
    """`count` query strings (q, and room for some), the same every run."""
    rng = random.Random(_RNG_SEED)
    vocabulary = sorted(set(WORDS))
    rooms = [name for name, _, _ in room_plan(spec)]
    queries: list[dict[str, str]] = []
    for i in range(count):
        picked = rng.sample(vocabulary, rng.choice((1, 1, 2, 2, 3)))
        typed = [w[: rng.randint(1, len(w))] if rng.random() < 0.5 else w for w in picked]
        if i % 10 == 9:  # a word no message holds
            typed.append("zyzzyva")
        query = {"q": " ".join(typed), "limit": str(LIMIT)}
        if i % 5 == 4:
            query["room"] = rng.choice(rooms)
        queries.append(query)
    return queries


def _search_samples(
    port: int, token: str, queries: list[dict[str, str]]
) -> tuple[list[int], list[int]]:
    """Each query once on one kept-alive connection (blocking: run it in a thread): (ns
    from request to the whole body, results in each answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[int] = []
    found: list[int] = []
    try:
        for query in queries:
            path = "/api/search?" + urllib.parse.urlencode(query)
            t0 = time.monotonic_ns()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            latencies.append(time.monotonic_ns() - t0)
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {resp.status} {body[:200]!r}")
            found.append(len(json.loads(body)["results"]))
    finally:
        conn.close()
    return latencies, found


async def measure_search(server: ServerProc, spec: SeedSpec, samples: int) -> dict[str, Any]:
    """Sign in as READER (who may read every seeded room), then time `samples` searches."""
    token = await reader_token(server)
    queries = search_queries(spec, samples)
    cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
    latencies, found = await asyncio.to_thread(_search_samples, server.port, token, queries)
    dt = time.monotonic() - t0
    result: dict[str, Any] = {
        "samples": samples,
        "search_ms": summarize_ns(latencies),
        "slowest": queries[max(range(samples), key=latencies.__getitem__)],
        "full_pages": sum(n == LIMIT for n in found),
        "empty": sum(n == 0 for n in found),
        "measure_s": round(dt, 2),
        "server_cpu_s": round(cpu_seconds(server.pid) - cpu0, 2),
        "rss_kib": server.rss_kib(),
    }
    s = result["search_ms"]
    print(
        f"    search p50 {s['p50']:.2f} p90 {s['p90']:.2f} p99 {s['p99']:.2f} "
        f"max {s['max']:.2f} ms ({result['full_pages']} full pages, {result['empty']} empty; "
        f"slowest: {result['slowest']})",
        flush=True,
    )
    return result
