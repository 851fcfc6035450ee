"""The four workloads: fan-out, idle connections, durable ingest, reconnect storm.

Every loop here is bounded in count and in time; all traffic goes to 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from parley_bench.client import (
    COUNT,
    INGEST,
    OBSERVE,
    BenchClient,
    Hub,
    Target,
    connect_many,
)
from parley_bench.servers import cpu_seconds, machine_busy_seconds, rss_kib, wait_for_quiet
from parley_bench.stats import check_sequence, is_sustained, summarize_ns
from parley_bench.stormclient import StormClient, StormGroup, connect_group

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
    storm_concurrency: int = 1000  # handshakes in flight, over all the workers
    storm_workers: int = 4
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
            storm_workers=2,
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
    await _quiet(lambda: hub.deliveries() + hub.acks, quiet_s, wait_s)


async def _quiet(count: Callable[[], int], quiet_s: float = 0.3, wait_s: float = 10.0) -> None:
    """Wait until `count()` (of frames received) stayed the same for `quiet_s`."""
    deadline = time.monotonic() + wait_s
    last = -1
    while time.monotonic() < deadline:
        now = count()
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


# --- worker processes (idle connections, storm) ----------------------------------


def worker_args(
    kind: str, spec: str, count: int, offset: int, addr: str, concurrency: int
) -> list[str]:
    """The command line of one generator worker process (`kind`: conn-worker, storm-worker)."""
    return [
        sys.executable,
        "-m",
        "parley_bench",
        kind,
        "--spec",
        spec,
        "--count",
        str(count),
        "--offset",
        str(offset),
        "--addr",
        addr,
        "--concurrency",
        str(max(10, concurrency)),
    ]


class _Worker:
    """One worker process, driven over stdin/stdout (JSON lines)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()

    async def answer(self, wait_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), wait_s)
        if not line:
            raise RuntimeError("worker exited")
        obj = json.loads(line)
        assert isinstance(obj, dict)
        return obj


async def _all(workers: list[_Worker], command: str, wait_s: float) -> list[dict[str, Any]]:
    """`command` to every worker at once, then each one's answer."""
    for w in workers:
        await w.ask(command)
    return [await w.answer(wait_s) for w in workers]


@contextlib.asynccontextmanager
async def _worker_pool(
    kind: str, target: Target, total: int, workers: int, concurrency: int
) -> AsyncIterator[list[_Worker]]:
    """`workers` processes of `kind` sharing `total` clients (and `concurrency` handshakes in
    flight), each from its own 127.0.0.x address; they inherit this process's core. Yields
    them once every one is ready; at the end they are told to close, or killed."""
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
    pool: list[_Worker] = []
    try:
        for w, count in enumerate(counts):
            args = worker_args(
                kind, spec, count, sum(counts[:w]), f"127.0.0.{2 + w}", concurrency // workers
            )
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            pool.append(_Worker(proc))
        for worker in pool:
            await worker.answer(30)  # "ready"
        yield pool
        for worker in pool:
            await worker.ask("close")
        for worker in pool:
            await asyncio.wait_for(worker.proc.wait(), 60)
    finally:
        for worker in pool:
            if worker.proc.returncode is None:
                worker.proc.kill()
                await worker.proc.wait()
        os.unlink(spec)


def _summed_errors(reports: list[dict[str, Any]], key: str = "errors") -> dict[str, int]:
    errors: dict[str, int] = {}
    for r in reports:
        for k, v in r.get(key, {}).items():
            errors[k] = errors.get(k, 0) + int(v)
    return errors


# --- idle connections ------------------------------------------------------------


async def connections(
    target: Target, server_pid: int, cfg: Config, total: int | None = None
) -> dict[str, Any]:
    """Hold `total` idle connections (Parley: authenticated and joined to "general"), opened by
    several worker processes from different 127.0.0.x addresses; memory per connection from the
    server's RSS before and after."""
    total = total or cfg.conn_total
    workers = cfg.conn_workers
    concurrency = cfg.conn_concurrency * workers
    async with _worker_pool("conn-worker", target, total, workers, concurrency) as pool:
        await asyncio.sleep(cfg.conn_settle_s / 2)
        rss0 = rss_kib(server_pid)
        cpu0 = cpu_seconds(server_pid)
        t0 = time.monotonic()
        reports = await _all(pool, "go", 300)
        connect_s = time.monotonic() - t0
        cpu1 = cpu_seconds(server_pid)
        await asyncio.sleep(cfg.conn_settle_s)
        rss1 = rss_kib(server_pid)
        await asyncio.sleep(cfg.conn_hold_s)
        held = sum(int(r["connected"]) for r in await _all(pool, "status", 30))
        rss2 = rss_kib(server_pid)
        connected = sum(int(r["connected"]) for r in reports)
        errors = _summed_errors(reports)
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
    return result


def _load_json(path: str) -> Any:
    with open(path) as fh:
        return json.load(fh)


def _worker_target(spec_path: str, offset: int) -> Target:
    """A worker process's target, its tokens rotated by `offset` (so workers share users)."""
    spec = _load_json(spec_path)
    tokens: list[str] = spec["tokens"]
    if tokens:
        shift = offset % len(tokens)
        tokens = tokens[shift:] + tokens[:shift]
    return Target(spec["name"], spec["url"], bool(spec["parley"]), tokens)


async def _command_reader() -> asyncio.StreamReader:
    """A worker process's command stream (stdin); says the worker is ready."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"ready": True})
    return reader


async def _worker_setup(
    spec_path: str, count: int, offset: int, mode: int
) -> tuple[Target, Hub, list[BenchClient], asyncio.StreamReader]:
    """A worker process's target, clients and command stream (stdin); says it is ready."""
    target = _worker_target(spec_path, offset)
    hub = Hub()
    clients = [BenchClient(hub, target.parley, mode, ident=offset + i) for i in range(count)]
    return target, hub, clients, await _command_reader()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _commands(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """A worker's commands, until `close` or the end of its input (bounded in count)."""
    for _ in range(10_000):
        line = (await reader.readline()).strip()
        if line in (b"close", b""):
            return
        yield line


async def _abort_all(clients: list[BenchClient]) -> None:
    for c in clients:
        c.close(abort=True)
    await asyncio.sleep(0.2)


async def conn_worker(spec_path: str, count: int, offset: int, addr: str, concurrency: int) -> None:
    """One worker process of the connections workload."""
    target, _, clients, reader = await _worker_setup(spec_path, count, offset, COUNT)
    async for line in _commands(reader):
        if line == b"go":
            res = await connect_many(
                clients,
                target,
                join=True,
                concurrency=concurrency,
                local_addrs=[addr],
                deadline_s=240.0,
            )
            _emit({"connected": res.connected, "elapsed_s": res.elapsed_s, "errors": res.errors})
        elif line == b"status":
            _emit({"connected": sum(1 for c in clients if c.connected)})
    await _abort_all(clients)


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
    at once (TCP reset) and reconnect at once; Parley clients rejoin with `since`.

    The clients live in `storm_workers` processes (storm_worker), each from its own
    127.0.0.x address, sharing this process's core; this one sends and keeps the time."""
    n = cfg.storm_clients
    workers = cfg.storm_workers
    async with _worker_pool("storm-worker", target, n, workers, cfg.storm_concurrency) as pool:
        joined = await _all(pool, f"connect {cfg.connect_concurrency // workers}", 300)
        failed = sum(int(r["failed"]) for r in joined)
        if failed:
            return {"error": f"{failed} clients failed to connect: {_summed_errors(joined)}"}
        sender = _StormSender(target, n, cfg)
        await sender.start()
        try:
            await asyncio.sleep(cfg.storm_before_s)
            gen_pids = [w.proc.pid for w in pool]
            cpu0, gen0, busy0 = _cpu_now(server_pid, gen_pids)
            t_drop = time.monotonic_ns()
            reports = await _all(pool, f"storm {cfg.storm_timeout_s}", cfg.storm_timeout_s + 30)
            cpu1, gen1, busy1 = _cpu_now(server_pid, gen_pids)
            await asyncio.sleep(cfg.storm_after_s)
        finally:
            await sender.stop()
        final = await sender.final(max(int(r["last_seq"]) for r in reports))
        checks = await _all(pool, f"check {final}", 30)
    resumed = sum(int(r["resumed"]) for r in reports)
    last_ns = max((int(r["last_resumed_ns"]) for r in reports if r["resumed"]), default=0)
    resume_s = (last_ns - t_drop) / 1e9 if resumed else math.nan
    lost = sum(int(c["lost"]) for c in checks)
    doubled = sum(int(c["doubled"]) for c in checks)
    clients_lost = sum(int(c["clients_with_loss"]) for c in checks)
    result: dict[str, Any] = {
        "clients": n,
        "workers": workers,
        "send_rate": cfg.storm_rate,
        "messages_sent": sender.sent,
        "reconnected": sum(int(r["connected"]) for r in reports),
        "reconnect_failed": sum(int(r["failed"]) for r in reports),
        "all_resumed": resumed == n,
        "resumed": resumed,
        "resume_all_s": round(resume_s, 3),
        "reconnect_all_s": round(max(float(r["elapsed_s"]) for r in reports), 3),
        "server_cpu_s": round(cpu1 - cpu0, 2),
        "generator_cpu_s": round(gen1 - gen0, 2),
        "other_cpu_s": round(max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (gen1 - gen0)), 2),
        "lost": lost,
        "doubled": doubled,
        "clients_with_loss": clients_lost,
        "clients_with_duplicates": sum(int(c["clients_with_duplicates"]) for c in checks),
        "sender_reconnects": sender.reconnects,
        "resume_protocol": target.parley,
    }
    if errors := _summed_errors(reports):
        result["reconnect_errors"] = errors
    print(
        f"    {target.name}: {resumed}/{n} resumed in {resume_s:.2f} s, "
        f"lost {lost} doubled {doubled} (clients with loss {clients_lost})",
        flush=True,
    )
    return result


def _cpu_now(server_pid: int, gen_pids: list[int]) -> tuple[float, float, float]:
    """CPU seconds so far: of the server, of the generator (this process and its workers
    `gen_pids`), and of the whole machine."""
    gen = _gen_cpu() + sum(cpu_seconds(pid) for pid in gen_pids)
    return cpu_seconds(server_pid), gen, machine_busy_seconds()


class _StormSender:
    """The storm's one sender, in the driving process: `storm_rate` messages a second.
    Parley: not joined (acks only); the peers: it hears the broadcast too."""

    def __init__(self, target: Target, ident: int, cfg: Config) -> None:
        self.cfg = cfg
        self.hub = Hub()
        self.client = BenchClient(self.hub, target.parley, OBSERVE, ident=ident)
        token = target.tokens[0] if target.tokens else None
        self.target = Target(target.name, target.url, target.parley, [token] if token else [])
        self.sent = 0
        self.reconnects = 0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await connect_many([self.client], self.target, join=False, concurrency=1)
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        t0 = time.monotonic()
        while not self._stop:
            if not self.client.connected:  # the tutorial server drops a sender when a
                self.reconnects += 1  # receiver vanishes
                if self.reconnects > 50:
                    return
                await connect_many([self.client], self.target, join=False, concurrency=1)
                continue
            due = int(self.cfg.storm_rate * (time.monotonic() - t0)) - self.sent
            for _ in range(max(0, due)):
                self.client.send_bench(self.sent, self.cfg.text_size)
                self.sent += 1
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self._stop = True
        if self._task is not None:
            await self._task

    async def final(self, seen: int) -> int:
        """The last seq every client must have: Parley's highest acked or seen seq (once
        every send is acked); the peers' last sender seq."""
        if not self.target.parley:
            final = self.sent - 1
        else:
            await _until(lambda: self.hub.acks >= self.sent, 10.0)
            final = max(seen, self.client.ack_seq)
        self.client.close()
        await _until(lambda: not self.client.connected, 10.0)
        return final


async def storm_worker(
    spec_path: str, count: int, offset: int, addr: str, concurrency: int
) -> None:
    """One worker process of the storm: `connect N` (join, N handshakes in flight),
    `storm TIMEOUT` (drop all, reconnect with `since`, wait until resumed), `check FINAL`
    (lost and doubled against the range up to FINAL). Its clients are the lean storm
    clients of stormclient.py."""
    target = _worker_target(spec_path, offset)
    group = StormGroup(target, addr)
    clients = [StormClient(group, i) for i in range(count)]
    reader = await _command_reader()
    async for line in _commands(reader):
        word, _, arg = line.decode().partition(" ")
        if word == "connect":
            res = await connect_group(clients, concurrency=int(arg), deadline_s=240.0)
            for c in clients:
                c.first_target = c.resume_target
            await _quiet(lambda: group.frames)
            gc.freeze()  # the clients and their sockets: no collection walks them again
            _emit({"failed": res.failed, "errors": res.errors})
        elif word == "storm":
            _emit(await _drop_and_resume(clients, group, concurrency, float(arg)))
        elif word == "check":
            _emit(await _check_storm(clients, target, int(arg)))
    for c in clients:
        c.abort()
    await asyncio.sleep(0.2)


async def _drop_and_resume(
    clients: list[StormClient],
    group: StormGroup,
    concurrency: int,
    timeout_s: float,
) -> dict[str, Any]:
    t0 = time.monotonic()
    for c in clients:
        c.resumed_ns = 0
        c.abort()
    await _until(lambda: not any(c.connected for c in clients), 10.0)

    def since(c: StormClient) -> int | None:
        return max(c.last_seq, c.first_target) if group.parley else None

    res = await connect_group(clients, concurrency=concurrency, deadline_s=timeout_s, since=since)
    if not group.parley:  # no resume protocol: resumed = connected again
        for c in clients:
            if c.connected and not c.resumed_ns:
                c.resumed_ns = time.monotonic_ns()
    await _until(
        lambda: all(c.resumed_ns for c in clients),
        max(1.0, timeout_s - (time.monotonic() - t0)),
    )
    resumed = [c.resumed_ns for c in clients if c.resumed_ns]
    return {
        "connected": res.connected,
        "failed": res.failed,
        "errors": res.errors | group.errors,
        "elapsed_s": res.elapsed_s,
        "resumed": len(resumed),
        "last_resumed_ns": max(resumed, default=0),
        "last_seq": max(c.last_seq for c in clients),
    }


async def _check_storm(clients: list[StormClient], target: Target, final: int) -> dict[str, int]:
    await _until(lambda: all(c.last_seq >= final for c in clients if c.connected), 10.0)
    lost = doubled = clients_lost = clients_doubled = 0
    for c in clients:
        lo = c.first_target + 1 if target.parley else 0
        c_lost, c_doubled = check_sequence(c.seqs, lo, final)
        lost += c_lost
        doubled += c_doubled
        clients_lost += c_lost > 0
        clients_doubled += c_doubled > 0
    return {
        "lost": lost,
        "doubled": doubled,
        "clients_with_loss": clients_lost,
        "clients_with_duplicates": clients_doubled,
    }
