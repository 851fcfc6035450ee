"""The four workloads: fan-out, idle connections, durable ingest, reconnect storm.

Every loop here is bounded in count and in time; all traffic goes to 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parley_bench.client import (
    COUNT,
    INGEST,
    OBSERVE,
    TRACK,
    BenchClient,
    Hub,
    Target,
    connect_many,
)
from parley_bench.servers import cpu_seconds, machine_busy_seconds, rss_kib, wait_for_quiet
from parley_bench.stats import check_sequence, is_sustained, summarize_ns

__all__ = [
    "LOCAL_ADDRS",
    "Config",
    "connections",
    "fanout",
    "ingest",
    "storm",
    "tutorial",
]

#: source addresses the generator spreads its connections over (all loopback)
LOCAL_ADDRS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")


@dataclass
class Config:
    smoke: bool = False
    # fan-out
    fanout_sizes: list[int] = field(default_factory=lambda: [100, 1000, 5000])
    observers: int = 50
    senders: int = 10
    text_size: int = 64
    warm_s: float = 0.6
    window_s: float = 2.0
    fixed_window_s: float = 4.0
    drain_s: float = 6.0
    recover_s: float = 20.0
    start_deliveries: float = 40_000.0
    ramp_factor: float = 1.5
    refine_steps: int = 2
    max_steps: int = 12
    max_deliveries: float = 6_000_000.0
    max_p99_ms: float = 1000.0
    # fan-out past saturation: one more step at this multiple of the highest sustained rate
    past_factor: float = 2.0
    # the tutorial's mode: plain text, one sender, this many clients (issue 16)
    tutorial_clients: int = 1000
    # idle connections
    conn_total: int = 19_000
    conn_workers: int = 4
    conn_concurrency: int = 100
    conn_hold_s: float = 3.0
    conn_settle_s: float = 1.0
    # ingest
    ingest_clients: int = 200
    ingest_warm_s: float = 1.0
    ingest_window_s: float = 5.0
    # the pipelined row: sends each client keeps in flight (ingest_pipelined)
    ingest_in_flight: int = 8
    # reconnect storm
    storm_clients: int = 5000
    storm_rate: float = 10.0
    storm_concurrency: int = 1000
    storm_before_s: float = 2.0
    storm_after_s: float = 2.0
    storm_timeout_s: float = 60.0
    # multi-node fan-out (PostgreSQL; Redis between the nodes), see multinode.py
    multinode_clients: int = 1000
    multinode_setups: list[str] = field(
        default_factory=lambda: ["one_node", "one_node_redis", "two_nodes_redis"]
    )
    multinode_check_s: float = 4.0
    # hello at scale (issue 13), see hello.py: the seed, then sockets and requests timed
    hello_rooms: int = 100
    hello_private_rooms: int = 8
    hello_messages: int = 1_000_000
    hello_samples: int = 200
    # search at scale (issue 14), see search.py: over the hello workload's seed
    search_samples: int = 500
    # setup
    quiet_wait_s: float = 0.0  # wait up to this long for other load to go before each series
    connect_concurrency: int = 200
    users: int = 40

    @classmethod
    def smoke_config(cls) -> Config:
        return cls(
            smoke=True,
            fanout_sizes=[20],
            observers=5,
            senders=2,
            warm_s=0.2,
            window_s=0.5,
            fixed_window_s=0.5,
            drain_s=2.0,
            recover_s=3.0,
            start_deliveries=2_000.0,
            ramp_factor=3.0,
            refine_steps=0,
            max_steps=1,
            conn_total=200,
            conn_workers=2,
            conn_hold_s=0.2,
            conn_settle_s=0.2,
            ingest_clients=10,
            ingest_warm_s=0.2,
            ingest_window_s=0.8,
            storm_clients=50,
            storm_rate=20.0,
            storm_before_s=0.5,
            storm_after_s=0.5,
            storm_timeout_s=15.0,
            tutorial_clients=20,
            multinode_clients=20,
            multinode_setups=["two_nodes_redis"],
            multinode_check_s=0.5,
            hello_rooms=20,
            hello_private_rooms=3,
            hello_messages=20_000,
            hello_samples=20,
            search_samples=20,
            users=5,
        )


async def _until(pred: Callable[[], bool], wait_s: float, poll: float = 0.02) -> bool:
    """Wait until pred() is true; False after `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while not pred():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)
    return True


async def _quiesce(hub: Hub, quiet_s: float = 0.3, wait_s: float = 10.0) -> None:
    """Wait until no frame arrived for `quiet_s` (presence storms after joins)."""
    deadline = time.monotonic() + wait_s
    last = -1
    while time.monotonic() < deadline:
        now = hub.deliveries() + hub.acks
        if now == last:
            return
        last = now
        await asyncio.sleep(quiet_s)


def _gen_cpu() -> float:
    return time.process_time()


# --- fan-out -------------------------------------------------------------------


@dataclass
class _Fanout:
    hub: Hub
    clients: list[BenchClient]
    senders: list[BenchClient]
    target: Target
    server_pid: int
    cfg: Config
    more_pids: tuple[int, ...] = ()  # further server processes (multi-node: the other nodes)

    def server_cpu(self) -> float:
        """CPU seconds of the server process(es) under test, summed."""
        return sum(cpu_seconds(pid) for pid in (self.server_pid, *self.more_pids))

    def live(self) -> int:
        return sum(1 for c in self.clients if c.connected)


async def _step(fo: _Fanout, deliveries_per_s: float, window_s: float) -> dict[str, Any]:
    """Send at a fixed rate for warm + window seconds, measure the window, then drain."""
    cfg, hub = fo.cfg, fo.hub
    n = fo.live()
    msg_rate = deliveries_per_s / n
    senders = fo.senders
    n_senders = len(senders)
    size = cfg.text_size
    base = hub.deliveries()
    disc0 = hub.disconnects
    sent = 0
    t0 = time.monotonic()
    t_w0 = t0 + cfg.warm_s
    t_w1 = t_w0 + window_s
    burst_cap = max(1, int(msg_rate * 0.05))
    snap0: tuple[float, int, int, int, float, float, float] | None = None
    snap1: tuple[float, int, int, int, float, float, float] | None = None
    while True:
        now = time.monotonic()
        if snap0 is None and now >= t_w0:
            snap0 = (
                now,
                hub.deliveries(),
                len(hub.lat),
                sent,
                fo.server_cpu(),
                _gen_cpu(),
                machine_busy_seconds(),
            )
        if now >= t_w1:
            snap1 = (
                now,
                hub.deliveries(),
                len(hub.lat),
                sent,
                fo.server_cpu(),
                _gen_cpu(),
                machine_busy_seconds(),
            )
            break
        due = min(int(msg_rate * (now - t0)) - sent, burst_cap)
        for _ in range(due):
            senders[hub.seq % n_senders].send_bench(hub.seq, size)
            hub.seq += 1
            sent += 1
        await asyncio.sleep(0.001)
    assert snap0 is not None
    expected = base + sent * n
    drained = await _until(lambda: hub.deliveries() >= expected, cfg.drain_s)
    dt = snap1[0] - snap0[0]
    delivered = (snap1[1] - snap0[1]) / dt
    offered = (snap1[3] - snap0[3]) * n / dt
    lat = summarize_ns(hub.lat[snap0[2] : snap1[2]])
    disconnects = hub.disconnects - disc0
    behind = offered < 0.95 * deliveries_per_s  # the generator could not send at the rate
    sustained = (
        drained
        and disconnects == 0
        and not behind
        and is_sustained(offered, delivered, lat["p99"], max_p99_ms=cfg.max_p99_ms)
    )
    server_cpu = (snap1[4] - snap0[4]) / dt
    step: dict[str, Any] = {
        "target_deliveries_per_s": round(deliveries_per_s),
        "offered_per_s": round(offered),
        "delivered_per_s": round(delivered),
        "messages_per_s": round(msg_rate, 2),
        "clients": n,
        "latency_ms": lat,
        "server_cpu": round(server_cpu, 3),
        "server_us_per_delivery": round(server_cpu / delivered * 1e6, 3) if delivered else None,
        "generator_cpu": round((snap1[5] - snap0[5]) / dt, 3),
        "other_cpu": round(
            max(0.0, (snap1[6] - snap0[6]) - (snap1[4] - snap0[4]) - (snap1[5] - snap0[5])) / dt,
            3,
        ),
        "generator_behind": behind,
        "drained": drained,
        "disconnects": disconnects,
        "sustained": sustained,
    }
    if not drained:
        missing = expected - hub.deliveries()
        # let the backlog drain before the next step (bounded); record what is left
        recovered = await _until(lambda: hub.deliveries() >= expected, cfg.recover_s)
        step["backlog_after_drain"] = missing
        step["recovered"] = recovered
    print(
        f"    {fo.target.name} N={n} {deliveries_per_s:>10,.0f}/s offered {offered:>10,.0f} "
        f"delivered {delivered:>10,.0f} p50 {lat['p50']:7.2f} p99 {lat['p99']:8.2f} ms "
        f"cpu srv {step['server_cpu']:.2f} gen {step['generator_cpu']:.2f} "
        f"other {step['other_cpu']:.2f} "
        f"{'ok' if sustained else 'NOT sustained'}",
        flush=True,
    )
    return step


async def _ramp(fo: _Fanout, start: float) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Rising rates until one is not sustained, then bisect; returns (best step, all steps)."""
    cfg = fo.cfg
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    rate = start
    fail: float | None = None
    downs = 0
    for _ in range(cfg.max_steps):
        step = await _step(fo, rate, cfg.window_s)
        steps.append(step)
        if step.get("recovered") is False:
            return best, steps  # a backlog that does not drain: stop here
        if step["sustained"]:
            if best is None or step["delivered_per_s"] > best["delivered_per_s"]:
                best = step
            if rate >= cfg.max_deliveries:
                break
            rate = min(rate * cfg.ramp_factor, cfg.max_deliveries)
        else:
            fail = rate
            if best is not None or downs >= 3:
                break
            downs += 1
            rate = rate / (cfg.ramp_factor**2)
    if best is not None and fail is not None:
        lo, hi = float(best["target_deliveries_per_s"]), fail
        for _ in range(cfg.refine_steps):
            mid = math.sqrt(lo * hi)
            step = await _step(fo, mid, cfg.window_s)
            steps.append(step)
            if step.get("recovered") is False:
                break
            if step["sustained"]:
                lo = mid
                if step["delivered_per_s"] > best["delivered_per_s"]:
                    best = step
            else:
                hi = mid
    return best, steps


async def fanout(
    target: Target,
    server_pid: int,
    cfg: Config,
    extra_rates: dict[int, dict[str, float]] | None = None,
    *,
    past_saturation: bool = False,
) -> dict[str, Any]:
    """Fan-out for every N in cfg.fanout_sizes (clients grow; one room "general").

    extra_rates: {N: {label: deliveries/s}} fixed-rate points to measure as well
    (e.g. 50% of Node's highest rate). past_saturation: one more step (`past`) at
    cfg.past_factor times the highest sustained rate: does the server hold its maximum,
    or collapse?
    """
    hub = Hub()
    clients: list[BenchClient] = []
    out: dict[str, Any] = {}
    prev_best: float | None = None
    for n in sorted(cfg.fanout_sizes):
        if cfg.quiet_wait_s > 0:
            await wait_for_quiet(0.3, 1.0, cfg.quiet_wait_s)
        fresh = [BenchClient(hub, target.parley, COUNT, ident=i) for i in range(len(clients), n)]
        res = await connect_many(
            fresh,
            target,
            join=True,
            concurrency=cfg.connect_concurrency,
            local_addrs=LOCAL_ADDRS,
        )
        clients.extend(fresh)
        entry: dict[str, Any] = {
            "clients": n,
            "connect_s": round(res.elapsed_s, 2),
            "connect_failed": res.failed,
        }
        out[str(n)] = entry
        if res.failed:
            entry["connect_errors"] = res.errors
        live = [c for c in clients if c.connected]
        if len(live) < 0.99 * n:
            entry["error"] = f"only {len(live)} of {n} clients connected: {res.errors}"
            print(f"    {target.name} N={n}: {entry['error']}", flush=True)
            break
        await _quiesce(hub)
        n_send = max(1, min(cfg.senders, n // 10))
        senders = live[:n_send]
        every = max(1, len(live) // cfg.observers)
        for i, c in enumerate(live):
            c.mode = OBSERVE if (i < n_send or i % every == 0) else COUNT
        fo = _Fanout(hub, live, senders, target, server_pid, cfg)
        start = cfg.start_deliveries if prev_best is None else max(2000.0, prev_best * 0.4)
        best, steps = await _ramp(fo, start)
        entry["steps"] = steps
        if best is None:
            entry["error"] = "no sustained rate found"
            continue
        top = float(best["delivered_per_s"])
        prev_best = top
        entry["max_deliveries_per_s"] = round(top)
        entry["at_max"] = best
        points: dict[str, float] = {"at50": 0.5 * top, "at90": 0.9 * top}
        for label, rate in (extra_rates or {}).get(n, {}).items():
            points[label] = rate
        for label, rate in points.items():
            if rate > 1.2 * top:
                entry[label] = {"target_deliveries_per_s": round(rate), "skipped": "above max"}
                continue
            entry[label] = await _step(fo, rate, cfg.fixed_window_s)
        if past_saturation:
            past = entry["past"] = await _step(fo, cfg.past_factor * top, cfg.window_s)
            entry["past_of_max"] = round(past["delivered_per_s"] / top, 3)
    for c in clients:
        c.close()
    await _until(lambda: not any(c.connected for c in clients), 10.0)
    return out


async def tutorial(
    target: Target, server_pid: int, cfg: Config, extra_rates: dict[str, float] | None = None
) -> dict[str, Any]:
    """The tutorial's workload: plain text (no subprotocol; Parley signs the sockets in
    with tokens and puts them in "general"), ONE sender, cfg.tutorial_clients clients.
    Fan-out's ramp, the fixed-rate points (`extra_rates` too), then a step past
    saturation."""
    plain = dataclasses.replace(target, parley=False)
    n = cfg.tutorial_clients
    one = dataclasses.replace(cfg, fanout_sizes=[n], senders=1)
    extra = {n: extra_rates} if extra_rates else None
    entry: dict[str, Any] = (await fanout(plain, server_pid, one, extra, past_saturation=True))[
        str(n)
    ]
    return entry


# --- idle connections ------------------------------------------------------------


def worker_args(spec: str, count: int, offset: int, addr: str, cfg: Config) -> list[str]:
    return [
        sys.executable,
        "-m",
        "parley_bench",
        "conn-worker",
        "--spec",
        spec,
        "--count",
        str(count),
        "--offset",
        str(offset),
        "--addr",
        addr,
        "--concurrency",
        str(max(10, cfg.conn_concurrency)),
    ]


async def _readline(stream: asyncio.StreamReader, wait_s: float) -> dict[str, Any]:
    line = await asyncio.wait_for(stream.readline(), wait_s)
    if not line:
        raise RuntimeError("worker exited")
    obj = json.loads(line)
    assert isinstance(obj, dict)
    return obj


async def connections(
    target: Target, server_pid: int, cfg: Config, total: int | None = None
) -> dict[str, Any]:
    """Hold `total` idle connections (Parley: authenticated and joined to "general"), opened by
    several worker processes from different 127.0.0.x addresses; memory per connection from the
    server's RSS before and after."""
    total = total or cfg.conn_total
    workers = cfg.conn_workers
    counts = [total // workers + (1 if w < total % workers else 0) for w in range(workers)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(
            {
                "name": target.name,
                "url": target.url,
                "parley": target.parley,
                "tokens": list(target.tokens),
            },
            fh,
        )
        spec = fh.name
    procs: list[asyncio.subprocess.Process] = []
    try:
        for w, count in enumerate(counts):
            procs.append(
                await asyncio.create_subprocess_exec(
                    *worker_args(spec, count, sum(counts[:w]), f"127.0.0.{2 + w}", cfg),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for p in procs:
            assert p.stdout is not None
            await _readline(p.stdout, 30)  # "ready"
        await asyncio.sleep(cfg.conn_settle_s / 2)
        rss0 = rss_kib(server_pid)
        cpu0 = cpu_seconds(server_pid)
        t0 = time.monotonic()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        reports = []
        for p in procs:
            assert p.stdout is not None
            reports.append(await _readline(p.stdout, 300))
        connect_s = time.monotonic() - t0
        cpu1 = cpu_seconds(server_pid)
        await asyncio.sleep(cfg.conn_settle_s)
        rss1 = rss_kib(server_pid)
        await asyncio.sleep(cfg.conn_hold_s)
        held = 0
        for p in procs:
            assert p.stdin is not None
            assert p.stdout is not None
            p.stdin.write(b"status\n")
            await p.stdin.drain()
            held += int((await _readline(p.stdout, 30))["connected"])
        rss2 = rss_kib(server_pid)
        connected = sum(int(r["connected"]) for r in reports)
        errors: dict[str, int] = {}
        for r in reports:
            for k, v in r.get("errors", {}).items():
                errors[k] = errors.get(k, 0) + int(v)
        per_conn = (rss1 - rss0) / connected if connected else math.nan
        result: dict[str, Any] = {
            "requested": total,
            "connected": connected,
            "held": held,
            "failed": total - connected,
            "connect_s": round(connect_s, 2),
            "connects_per_s": round(connected / connect_s) if connect_s > 0 else None,
            "rss_before_kib": rss0,
            "rss_after_kib": rss1,
            "rss_after_hold_kib": rss2,
            "kib_per_conn": round(per_conn, 2),
            "server_cpu_s": round(cpu1 - cpu0, 2),
            "workers": workers,
        }
        if errors:
            result["errors"] = errors
        print(
            f"    {target.name}: {connected}/{total} connected in {connect_s:.1f} s, "
            f"held {held}, {per_conn:.1f} KiB/conn",
            flush=True,
        )
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"close\n")
            await p.stdin.drain()
        for p in procs:
            await asyncio.wait_for(p.wait(), 60)
        return result
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        os.unlink(spec)


def _load_json(path: str) -> Any:
    with open(path) as fh:
        return json.load(fh)


async def conn_worker(spec_path: str, count: int, offset: int, addr: str, concurrency: int) -> None:
    """One worker process of the connections workload, driven over stdin/stdout (JSON lines)."""
    spec = _load_json(spec_path)
    tokens: list[str] = spec["tokens"]
    if tokens:
        shift = offset % len(tokens)
        tokens = tokens[shift:] + tokens[:shift]
    target = Target(spec["name"], spec["url"], bool(spec["parley"]), tokens)
    hub = Hub()
    clients = [BenchClient(hub, target.parley, COUNT, ident=offset + i) for i in range(count)]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    emit({"ready": True})
    for _ in range(10_000):
        line = (await reader.readline()).strip()
        if line == b"go":
            res = await connect_many(
                clients,
                target,
                join=True,
                concurrency=concurrency,
                local_addrs=[addr],
                deadline_s=240.0,
            )
            emit({"connected": res.connected, "elapsed_s": res.elapsed_s, "errors": res.errors})
        elif line == b"status":
            emit({"connected": sum(1 for c in clients if c.connected)})
        elif line in (b"close", b""):
            for c in clients:
                c.close(abort=True)
            await asyncio.sleep(0.2)
            return


# --- durable ingest ----------------------------------------------------------------


async def ingest(
    target: Target, server_pid: int, cfg: Config, in_flight: int = 1
) -> dict[str, Any]:
    """Each client keeps `in_flight` sends unacked: it sends its next message when the ack
    of an earlier one arrives (with more than one, the sends due after one read of acks
    go out in one write)."""
    hub = Hub()
    clients = [BenchClient(hub, target.parley, INGEST, ident=i) for i in range(cfg.ingest_clients)]
    res = await connect_many(
        clients, target, join=False, concurrency=cfg.connect_concurrency, local_addrs=LOCAL_ADDRS
    )
    if res.failed:
        for c in clients:
            c.close()
        return {"error": f"{res.failed} clients failed to connect: {res.errors}"}
    for c in clients:
        c.text_size = cfg.text_size
        c.window = in_flight
        c.start_ingest()
    await asyncio.sleep(cfg.ingest_warm_s)
    m0 = machine_busy_seconds()
    a0, l0, c0, g0, t0 = (
        hub.acks,
        len(hub.ack_lat),
        cpu_seconds(server_pid),
        _gen_cpu(),
        time.monotonic(),
    )
    await asyncio.sleep(cfg.ingest_window_s)
    a1, l1, c1, g1, t1 = (
        hub.acks,
        len(hub.ack_lat),
        cpu_seconds(server_pid),
        _gen_cpu(),
        time.monotonic(),
    )
    m1 = machine_busy_seconds()
    hub.stop_sending = True
    await _until(lambda: all(c.sent >= 1 for c in clients), 2.0)
    await asyncio.sleep(0.5)
    dt = t1 - t0
    lat = summarize_ns(hub.ack_lat[l0:l1])
    for c in clients:
        c.close()
    await _until(lambda: not any(c.connected for c in clients), 10.0)
    result: dict[str, Any] = {
        "clients": cfg.ingest_clients,
        "in_flight": in_flight,
        "acked_per_s": round((a1 - a0) / dt),
        "ack_latency_ms": lat,
        "server_cpu": round((c1 - c0) / dt, 3),
        "generator_cpu": round((g1 - g0) / dt, 3),
        "other_cpu": round(max(0.0, (m1 - m0) - (c1 - c0) - (g1 - g0)) / dt, 3),
        "errors": hub.errors,
    }
    if hub.error_samples:
        result["error_samples"] = hub.error_samples
    print(
        f"    {target.name} ({in_flight} in flight): {result['acked_per_s']:,} acked/s, "
        f"ack p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} ms, errors {hub.errors}",
        flush=True,
    )
    return result


# --- reconnect storm -----------------------------------------------------------------


async def storm(target: Target, server_pid: int, cfg: Config) -> dict[str, Any]:
    """`storm_clients` clients joined to "general" while one sender keeps sending; all drop
    at once (TCP reset) and reconnect at once; Parley clients rejoin with `since`."""
    hub = Hub()
    n = cfg.storm_clients
    clients = [BenchClient(hub, target.parley, TRACK, ident=i) for i in range(n)]
    res = await connect_many(
        clients, target, join=True, concurrency=cfg.connect_concurrency, local_addrs=LOCAL_ADDRS
    )
    if res.failed:
        for c in clients:
            c.close()
        return {"error": f"{res.failed} clients failed to connect: {res.errors}"}
    first = {id(c): c.resume_target for c in clients}  # Parley: joined.last_seq; peers: -1
    await _quiesce(hub)

    # the sender: its own hub; Parley: not joined (acks only); peers: it hears the broadcast too
    send_hub = Hub()
    sender = BenchClient(send_hub, target.parley, OBSERVE, ident=n)
    token = target.tokens[0] if target.tokens else None
    sender_target = Target(target.name, target.url, target.parley, [token] if token else [])
    await connect_many([sender], sender_target, join=False, concurrency=1)
    state = {"seq": 0, "stop": False, "reconnects": 0}

    async def send_loop() -> None:
        t0 = time.monotonic()
        while not state["stop"]:
            if not sender.connected:  # the tutorial server drops a sender when a receiver vanishes
                state["reconnects"] += 1
                if state["reconnects"] > 50:
                    return
                await connect_many([sender], sender_target, join=False, concurrency=1)
                continue
            due = int(cfg.storm_rate * (time.monotonic() - t0)) - state["seq"]
            for _ in range(max(0, due)):
                sender.send_bench(state["seq"], cfg.text_size)
                state["seq"] += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(send_loop())
    try:
        await asyncio.sleep(cfg.storm_before_s)
        for c in clients:
            c.resumed_ns = 0
        cpu0, gen0, busy0 = cpu_seconds(server_pid), _gen_cpu(), machine_busy_seconds()
        t_drop = time.monotonic_ns()
        for c in clients:
            c.close(abort=True)
        await _until(lambda: not any(c.connected for c in clients), 10.0)

        def since(c: BenchClient) -> int | None:
            return max(c.last_seq, first[id(c)]) if target.parley else None

        res2 = await connect_many(
            clients,
            target,
            join=True,
            since=since,
            concurrency=cfg.storm_concurrency,
            local_addrs=LOCAL_ADDRS,
            deadline_s=cfg.storm_timeout_s,
        )
        if not target.parley:  # no resume protocol: resumed = connected again
            for c in clients:
                if c.connected and not c.resumed_ns:
                    c.resumed_ns = time.monotonic_ns()
        all_resumed = await _until(
            lambda: all(c.resumed_ns for c in clients),
            max(1.0, cfg.storm_timeout_s - (time.monotonic_ns() - t_drop) / 1e9),
        )
        resumed = [c.resumed_ns for c in clients if c.resumed_ns]
        resume_s = (max(resumed) - t_drop) / 1e9 if resumed else math.nan
        cpu1, gen1, busy1 = cpu_seconds(server_pid), _gen_cpu(), machine_busy_seconds()
        await asyncio.sleep(cfg.storm_after_s)
    finally:
        state["stop"] = True
        await task
    sent = state["seq"]
    if target.parley:
        await _until(lambda: send_hub.acks >= sent, 10.0)
        final = max(c.last_seq for c in clients)
        final = max(final, sender.ack_seq)
    else:
        final = sent - 1
    await _until(lambda: all(c.last_seq >= final for c in clients if c.connected), 10.0)
    lost = doubled = clients_lost = clients_doubled = 0
    for c in clients:
        lo = first[id(c)] + 1 if target.parley else 0
        c_lost, c_doubled = check_sequence(c.seqs, lo, final)
        lost += c_lost
        doubled += c_doubled
        clients_lost += c_lost > 0
        clients_doubled += c_doubled > 0
    result: dict[str, Any] = {
        "clients": n,
        "send_rate": cfg.storm_rate,
        "messages_sent": sent,
        "reconnected": res2.connected,
        "reconnect_failed": res2.failed,
        "all_resumed": all_resumed,
        "resumed": len(resumed),
        "resume_all_s": round(resume_s, 3),
        "reconnect_all_s": round(res2.elapsed_s, 3),
        "server_cpu_s": round(cpu1 - cpu0, 2),
        "generator_cpu_s": round(gen1 - gen0, 2),
        "other_cpu_s": round(max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (gen1 - gen0)), 2),
        "lost": lost,
        "doubled": doubled,
        "clients_with_loss": clients_lost,
        "clients_with_duplicates": clients_doubled,
        "sender_reconnects": state["reconnects"],
        "resume_protocol": target.parley,
    }
    if res2.errors:
        result["reconnect_errors"] = res2.errors
    print(
        f"    {target.name}: {len(resumed)}/{n} resumed in {resume_s:.2f} s, "
        f"lost {lost} doubled {doubled} (clients with loss {clients_lost})",
        flush=True,
    )
    sender.close()
    for c in clients:
        c.close()
    await _until(lambda: not any(c.connected for c in [*clients, sender]), 10.0)
    return result
