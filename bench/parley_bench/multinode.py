"""Multi-node fan-out: Parley nodes sharing one PostgreSQL (and Redis between them).

One room, the clients spread evenly over the nodes (client i on node i mod k), senders on
every node. The rate ramp of the single-node fan-out finds the highest sustained deliveries/s
(deliveries summed over all clients, latency send-to-receive, senders and observers on every
node), then a fixed-rate run where every client records the seq of every message checks that
each message was delivered exactly once, in seq order, to every client on every node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from parley_bench.client import COUNT, OBSERVE, TRACK, BenchClient, Hub, Target, connect_many
from parley_bench.stats import check_sequence
from parley_bench.workloads import LOCAL_ADDRS, Config, _Fanout, _quiesce, _ramp, _step, _until

__all__ = ["SETUPS", "multinode"]

#: setup name -> (nodes, Redis)
SETUPS: dict[str, tuple[int, bool]] = {
    "one_node": (1, False),
    "one_node_redis": (1, True),
    "two_nodes_redis": (2, True),
}


async def _check_exactly_once(fo: _Fanout, rate: float) -> dict[str, Any]:
    """Every client records seqs while the senders send at `rate` deliveries/s for
    cfg.multinode_check_s; then every client must hold each seq of the range once, in order."""
    cfg, hub, clients = fo.cfg, fo.hub, fo.clients
    wait_s = cfg.drain_s + cfg.recover_s
    await _until(lambda: hub.acks >= hub.seq, wait_s)
    await _quiesce(hub)
    first = max(s.ack_seq for s in fo.senders) + 1
    sent0, acks0, errors0 = hub.seq, hub.acks, hub.errors
    for c in clients:
        c.mode = TRACK
        c.seqs = []
    step = await _step(fo, rate, cfg.multinode_check_s)
    sent = hub.seq - sent0
    acked = await _until(lambda: hub.acks - acks0 >= sent, wait_s)
    last = max(s.ack_seq for s in fo.senders)
    await _until(lambda: all(c.last_seq >= last for c in clients if c.connected), wait_s)
    lost = doubled = disorder = clients_bad = 0
    for c in clients:
        c_lost, c_doubled = check_sequence(c.seqs, first, last)
        c_disorder = sum(1 for a, b in zip(c.seqs, c.seqs[1:], strict=False) if b <= a)
        lost += c_lost
        doubled += c_doubled
        disorder += c_disorder
        clients_bad += bool(c_lost or c_doubled or c_disorder)
    return {
        "rate_deliveries_per_s": round(rate),
        "delivered_per_s": step["delivered_per_s"],
        "messages": sent,
        "acked": hub.acks - acks0,
        "all_acked": acked,
        "seq_range": [first, last],
        "stored": last - first + 1,
        "clients": len(clients),
        "deliveries_checked": sum(len(c.seqs) for c in clients),
        "lost": lost,
        "doubled": doubled,
        "out_of_order": disorder,
        "clients_with_problems": clients_bad,
        "errors": hub.errors - errors0,
        "disconnects": step["disconnects"],
    }


async def multinode(
    setup: str, urls: Sequence[str], pids: Sequence[int], tokens: Sequence[str], cfg: Config
) -> dict[str, Any]:
    """One setup: cfg.multinode_clients clients spread over the nodes at `urls`."""
    k = len(urls)
    n = cfg.multinode_clients
    hub = Hub()
    clients = [BenchClient(hub, True, COUNT, ident=i) for i in range(n)]
    per_node = [clients[j::k] for j in range(k)]
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(
            connect_many(
                group,
                Target(f"{setup}/node{j}", url, True, tokens),
                join=True,
                concurrency=max(1, cfg.connect_concurrency // k),
                local_addrs=LOCAL_ADDRS,
            )
            for j, (group, url) in enumerate(zip(per_node, urls, strict=True))
        )
    )
    failed = sum(r.failed for r in results)
    entry: dict[str, Any] = {
        "nodes": k,
        "redis": SETUPS[setup][1],
        "clients": n,
        "clients_per_node": [len(g) for g in per_node],
        "connect_s": round(time.monotonic() - t0, 2),
        "connect_failed": failed,
    }
    try:
        if failed > 0.01 * n:
            errors: dict[str, int] = {}
            for r in results:
                for key, v in r.errors.items():
                    errors[key] = errors.get(key, 0) + v
            entry["error"] = f"{failed} of {n} clients failed to connect: {errors}"
            return entry
        await _quiesce(hub)
        # senders and observers on every node, in equal numbers; senders alternate nodes
        per_sender_node = max(1, min(cfg.senders, n // 10) // k)
        live = [[c for c in g if c.connected] for g in per_node]
        senders = [g[i] for i in range(per_sender_node) for g in live]
        every = max(1, len(live[0]) * k // cfg.observers)
        for g in live:
            for i, c in enumerate(g):
                c.mode = OBSERVE if (i < per_sender_node or i % every == 0) else COUNT
        everyone = [c for g in live for c in g]
        target = Target(setup, urls[0], True, tokens)
        fo = _Fanout(hub, everyone, senders, target, pids[0], cfg, tuple(pids[1:]))
        entry["senders_per_node"] = per_sender_node
        best, steps = await _ramp(fo, cfg.start_deliveries)
        entry["steps"] = steps
        if best is None:
            entry["error"] = "no sustained rate found"
            top = cfg.start_deliveries / 4
        else:
            top = float(best["delivered_per_s"])
            entry["max_deliveries_per_s"] = round(top)
            entry["at_max"] = best
            entry["at50"] = await _step(fo, 0.5 * top, cfg.fixed_window_s)
        check = await _check_exactly_once(fo, 0.25 * top)
        entry["exactly_once"] = check
        problems = {
            key: check[key] for key in ("lost", "doubled", "out_of_order", "errors") if check[key]
        }
        if check["stored"] != check["messages"] or not check["all_acked"]:
            problems["stored_vs_sent"] = f"{check['stored']} stored, {check['messages']} sent"
        if problems:
            entry["error"] = f"exactly-once check failed: {problems}"
        print(
            f"    {setup}: {check['messages']} messages x {len(everyone)} clients, "
            f"{check['deliveries_checked']} deliveries checked, lost {check['lost']} "
            f"doubled {check['doubled']} out of order {check['out_of_order']}",
            flush=True,
        )
        return entry
    finally:
        for c in clients:
            c.close()
        await _until(lambda: not any(c.connected for c in clients), 10.0)
