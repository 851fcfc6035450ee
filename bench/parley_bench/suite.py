"""`python -m parley_bench suite`: every workload against every server, then the report."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from parley_bench.client import Target
from parley_bench.hello import (
    SeedSpec,
    copy_database,
    counted_at_read_time,
    measure_hello,
    seeded_database,
)
from parley_bench.multinode import SETUPS, multinode
from parley_bench.report import plot, render_markdown
from parley_bench.search import measure_search
from parley_bench.servers import (
    ServerProc,
    free_port,
    http_json,
    parley_command,
    raise_fd_limit,
    split_cores,
)
from parley_bench.workloads import Config, connections, fanout, ingest, storm, tutorial
from tests.support.pg import PgServer, pg_bin
from tests.support.redis_server import RedisServer, redis_bin

__all__ = ["run_suite"]

ALL_TARGETS = ("sink", "sink_frames", "node", "python", "parley")
#: Parley's ingest again with other flags, right after its own: one transaction per
#: message (what group commit gains) and without the search index (what it costs)
INGEST_VARIANTS: Final = {
    "parley_single": ["--commit-mode", "single"],
    "parley_nosearch": ["--search", "off"],
}
ALL_WORKLOADS = (
    "connections",
    "fanout",
    "tutorial",
    "storm",
    "ingest",
    "hello",
    "search",
    "multinode",
)
#: the workloads that run against every target (the others: Parley only, servers of their own)
PER_TARGET = ("connections", "fanout", "tutorial", "storm", "ingest")
#: the tutorial's plain-text workload: the servers of the tutorial's chapters
TUTORIAL_TARGETS = ("parley", "node", "python")
PASSWORD = "bench-password-123"


def _machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}"


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


async def register_users(base_url: str, count: int) -> list[str]:
    """Register `count` fresh users (a few requests in flight) and return their tokens."""
    tag = secrets.token_hex(3)
    sem = asyncio.Semaphore(4)

    async def one(i: int) -> str:
        name = f"bench{tag}u{i}"
        async with sem:
            status, body = await asyncio.to_thread(
                http_json,
                "POST",
                f"{base_url}/api/register",
                {"username": name, "password": PASSWORD},
            )
        if status not in (200, 201) or not isinstance(body, dict) or "token" not in body:
            raise RuntimeError(f"register {name}: HTTP {status} {body}")
        token: str = body["token"]
        return token

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def _parley_help() -> str:
    cmd = parley_command(Path("."), 0)
    return _version([cmd[0], "serve", "--help"])


TIMING_ERRORS = ("no sustained rate found",)


def workload_errors(results: dict[str, Any]) -> list[str]:
    """Errors recorded inside workload results (not exceptions), except those that only say
    a machine was too slow for a rate: a smoke run must fail when something broke, never
    because of timing."""
    found: list[str] = []
    for name, res in results.get("targets", {}).items():
        if not isinstance(res, dict):
            continue
        for wl, val in res.items():
            if not isinstance(val, dict):
                continue
            entries = list(val.values()) if wl == "fanout" else [val]
            for entry in entries:
                err = entry.get("error") if isinstance(entry, dict) else None
                if err and not any(t in err for t in TIMING_ERRORS):
                    found.append(f"{name} {wl}: {err}")
    return found


def _get_max(result: Any, workload: str) -> float | None:
    """The highest sustained deliveries/s a target reached in `workload`, if measured."""
    top = result.get(workload, {}).get("max_deliveries_per_s") if isinstance(result, dict) else None
    return float(top) if isinstance(top, int | float) else None


class Suite:
    def __init__(
        self,
        cfg: Config,
        out_dir: Path,
        peers_dir: Path,
        targets: list[str],
        workloads: list[str],
    ) -> None:
        self.cfg = cfg
        self.out_dir = out_dir
        self.peers_dir = peers_dir
        self.targets = targets
        self.workloads = workloads
        self.work = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        self.results: dict[str, Any] = {"targets": {}}
        self.failures: list[str] = []
        self.all_cores = frozenset(os.sched_getaffinity(0))
        # An outsider's measurement: a single-node server on one core, the generator (and
        # its worker processes) on the other. The multi-node workload runs nodes, database
        # and Redis unpinned (pinned to one core, a second node would add nothing).
        self.cores = split_cores()

    # --- servers ---------------------------------------------------------------

    def make_server(
        self,
        name: str,
        extra: list[str] | None = None,
        data: Path | None = None,
        *,
        pinned: bool = True,
    ) -> ServerProc:
        server = self._server(name, extra, data)
        server.cpus = self.cores[0] if self.cores and pinned else self.all_cores
        return server

    def _server(self, name: str, extra: list[str] | None, data: Path | None) -> ServerProc:
        port = free_port()
        log = self.work / f"{name}-{port}.log"
        if name in ("sink", "sink_frames"):
            cmd = [sys.executable, "-m", "parley_bench", "sink", "--port", str(port)]
            path = "/frames" if name == "sink_frames" else "/"
            return ServerProc(name, cmd, port, log, ws_path=path)
        if name == "node":
            node = shutil.which("node") or "node"
            cmd = [node, str(self.peers_dir / "ws_server.mjs")]
            return ServerProc(name, cmd, port, log, env={"PORT": str(port)})
        if name == "python":
            cmd = [sys.executable, str(self.peers_dir / "websockets_server.py")]
            return ServerProc(name, cmd, port, log, env={"PORT": str(port)})
        if data is None:
            data = self.work / f"data-{name}-{port}"
            data.mkdir(parents=True)
        cmd = parley_command(data, port, extra or [])
        return ServerProc(name, cmd, port, log, ws_path="/chat", parley=True)

    # --- one target -----------------------------------------------------------

    async def run_target(self, name: str) -> dict[str, Any]:
        cfg = self.cfg
        res: dict[str, Any] = {}
        node_max = {
            int(n): e.get("max_deliveries_per_s")
            for n, e in self.results["targets"].get("node", {}).get("fanout", {}).items()
            if isinstance(e, dict)
        }
        extra = (
            {n: {"at_node50": 0.5 * m} for n, m in node_max.items() if m}
            if name in ("parley", "python")
            else {}
        )
        node_tutorial = _get_max(self.results["targets"].get("node"), "tutorial")
        tutorial_extra = (
            {"at_node50": 0.5 * node_tutorial}
            if node_tutorial and name in ("parley", "python")
            else None
        )
        server = self.make_server(name)
        tokens: list[str] = []

        async def ensure_server() -> Target:
            nonlocal server, tokens
            if not server.alive():
                if server.proc is not None:
                    res.setdefault("restarts", []).append(server.log_tail(500))
                    server = self.make_server(name)
                await server.start()
                if server.parley:
                    t0 = time.monotonic()
                    tokens = await register_users(server.http_url, cfg.users)
                    res["register_s"] = round(time.monotonic() - t0, 2)
            return Target(name, server.ws_url, server.parley, tokens, server.pid)

        steps: list[tuple[str, Callable[[Target], Awaitable[dict[str, Any]]]]] = []
        only_fanout = name == "sink_frames"  # the per-frame sink only matters for fan-out
        if "connections" in self.workloads and not only_fanout:
            steps.append(("connections", lambda t: connections(t, t.pid, cfg)))
        if "fanout" in self.workloads:
            steps.append(("fanout", lambda t: fanout(t, t.pid, cfg, extra)))
        if "tutorial" in self.workloads and name in TUTORIAL_TARGETS:
            steps.append(("tutorial", lambda t: tutorial(t, t.pid, cfg, tutorial_extra)))
        if "storm" in self.workloads and not only_fanout:
            steps.append(("storm", lambda t: storm(t, t.pid, cfg)))
        if "ingest" in self.workloads and name in ("parley", "sink"):

            def run_ingest(in_flight: int) -> Callable[[Target], Awaitable[dict[str, Any]]]:
                async def run(t: Target) -> dict[str, Any]:
                    if name == "sink":
                        t = Target(t.name, t.url.rstrip("/") + "/echo", False, (), t.pid)
                    return await ingest(t, t.pid, cfg, in_flight)

                return run

            steps.append(("ingest", run_ingest(1)))
            steps.append(("ingest_pipelined", run_ingest(cfg.ingest_in_flight)))
        try:
            for wl, fn in steps:
                print(f"  [{name}] {wl}", flush=True)
                try:
                    target = await ensure_server()
                    t0 = time.monotonic()
                    res[wl] = await fn(target)
                    res[wl]["elapsed_s"] = round(time.monotonic() - t0, 1)
                except Exception as exc:
                    traceback.print_exc()
                    res[wl] = {"error": f"{type(exc).__name__}: {exc}"}
                    self.failures.append(f"{name} {wl}: {exc}")
                if not server.alive():
                    res[wl]["server_died"] = server.log_tail(1000)
                    self.failures.append(f"{name} died during {wl}")
            res["rss_end_kib"] = server.rss_kib()
        finally:
            code = server.stop()
            res["exit_code"] = code
            res["log_tail"] = server.log_tail(800)
        return res

    async def run_parley_ingest(self, name: str, flags: list[str]) -> dict[str, Any]:
        """Durable ingest of Parley started with `flags`: one transaction per message (for
        the group-commit ratio), or without the search index (for what the index costs)."""
        if flags[0] not in _parley_help():
            return {"error": f"`parley serve` has no {flags[0]} flag"}
        server = self.make_server(name, flags)
        try:
            await server.start()
            tokens = await register_users(server.http_url, min(self.cfg.users, 20))
            target = Target(name, server.ws_url, True, tokens, server.pid)
            print(f"  [{name}] ingest", flush=True)
            return {"ingest": await ingest(target, server.pid, self.cfg)}
        finally:
            server.stop()

    async def seeded(self, workload: str) -> tuple[SeedSpec, Path, dict[str, Any]]:
        """The database of many rooms and messages (seeded once, then cached: see
        hello.py) that `hello` and `search` measure against: (spec, database, seed info)."""
        cfg = self.cfg
        spec = SeedSpec(cfg.hello_rooms, cfg.hello_private_rooms, cfg.hello_messages)
        print(f"  [parley] {workload}: seed {spec.key()}", flush=True)
        db, seed = await seeded_database(spec)
        print(
            f"    {'cached' if seed['cached'] else 'seeded in ' + str(seed['seed_s']) + ' s'}: "
            f"{seed['rooms']} rooms, {seed['messages']:,} messages, {seed['db_mib']} MiB",
            flush=True,
        )
        return spec, db, seed

    def seeded_server(self, workload: str, db: Path) -> ServerProc:
        """A server on a copy of the seeded database `db`."""
        data = self.work / f"data-{workload}"
        copy_database(db, data)
        return self.make_server(f"parley_{workload}", data=data)

    async def run_hello(self) -> dict[str, Any]:
        """`hello` and GET /api/rooms against the seeded database."""
        spec, db, seed = await self.seeded("hello")
        counted = await asyncio.to_thread(counted_at_read_time, db)
        server = self.seeded_server("hello", db)
        try:
            await server.start()
            measured = await measure_hello(server, spec, self.cfg.hello_samples)
            return {"seed": seed, "counted_at_read_time": counted, **measured}
        finally:
            server.stop()

    async def run_search(self) -> dict[str, Any]:
        """GET /api/search against the seeded database (search.py)."""
        spec, db, seed = await self.seeded("search")
        server = self.seeded_server("search", db)
        try:
            await server.start()
            measured = await measure_search(server, spec, self.cfg.search_samples)
            return {"seed": seed, **measured}
        finally:
            server.stop()

    async def run_seeded(self, workload: str, run: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """A workload of the seeded database, its result under the parley target."""
        print(f"== {workload}", flush=True)
        parley = self.results["targets"].setdefault("parley", {})
        t0 = time.monotonic()
        try:
            parley[workload] = await run()
        except Exception as exc:
            traceback.print_exc()
            parley[workload] = {"error": f"{type(exc).__name__}: {exc}"}
            self.failures.append(f"parley {workload}: {exc}")
        parley[workload]["elapsed_s"] = round(time.monotonic() - t0, 1)

    async def run_multinode(self) -> dict[str, Any]:
        """Parley on PostgreSQL: one node, one node with Redis, two nodes with Redis (see
        multinode.py); a fresh database (and Redis) per setup, one PostgreSQL for all."""
        missing = [b for b in ("initdb", "pg_ctl", "psql") if pg_bin(b) is None]
        if redis_bin() is None:
            missing.append("redis-server")
        if missing:
            msg = f"skipped: {', '.join(missing)} not found (make system-deps installs them)"
            print(f"  [multinode] {msg}", flush=True)
            return {"skipped": msg}
        out: dict[str, Any] = {}
        pg = await asyncio.to_thread(PgServer)
        try:
            await asyncio.to_thread(pg.start)
            for setup in self.cfg.multinode_setups:
                print(f"  [multinode] {setup}", flush=True)
                t0 = time.monotonic()
                try:
                    out[setup] = await self._multinode_setup(setup, pg)
                except Exception as exc:
                    traceback.print_exc()
                    out[setup] = {"error": f"{type(exc).__name__}: {exc}"}
                    self.failures.append(f"multinode {setup}: {exc}")
                out[setup]["elapsed_s"] = round(time.monotonic() - t0, 1)
        finally:
            await asyncio.to_thread(pg.destroy)
        return out

    async def _multinode_setup(self, setup: str, pg: PgServer) -> dict[str, Any]:
        count, with_redis = SETUPS[setup]
        db_url = await asyncio.to_thread(pg.create_database)
        redis = await asyncio.to_thread(RedisServer().start) if with_redis else None
        extra = ["--db", db_url] + (["--redis", redis.url] if redis else [])
        nodes = [self.make_server(f"{setup}-node{i}", extra, pinned=False) for i in range(count)]
        try:
            for node in nodes:  # one after another: the first applies the migrations
                await node.start()
            t0 = time.monotonic()
            tokens = await register_users(nodes[0].http_url, self.cfg.users)
            register_s = round(time.monotonic() - t0, 2)
            res = await multinode(
                setup, [n.ws_url for n in nodes], [n.pid for n in nodes], tokens, self.cfg
            )
            res["register_s"] = register_s
            res["rss_end_kib"] = [n.rss_kib() for n in nodes]
            for n in nodes:
                if not n.alive():
                    res.setdefault("error", f"{n.name} died: {n.log_tail(500)}")
            return res
        finally:
            codes = [n.stop() for n in nodes]
            if redis is not None:
                await asyncio.to_thread(redis.destroy)
            if any(c not in (0, None) for c in codes):
                print(f"  [multinode] {setup}: node exit codes {codes}", flush=True)

    async def run(self) -> int:
        self.results["meta"] = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "smoke": self.cfg.smoke,
            "machine": _machine(),
            "python": sys.version.split()[0],
            "node": _version(["node", "--version"]) if shutil.which("node") else None,
            "fd_limit": raise_fd_limit(),
            "config": dict(vars(self.cfg)),
            "cores": None
            if self.cores is None
            else {"server": sorted(self.cores[0]), "generator": sorted(self.cores[1])},
        }
        if self.cores is not None:
            os.sched_setaffinity(0, self.cores[1])
        t_start = time.monotonic()
        single_node = [w for w in self.workloads if w in PER_TARGET]
        for name in self.targets if single_node else []:
            if name == "node" and not (self.peers_dir / "node_modules" / "ws").exists():
                msg = "bench/peers/node_modules missing (npm ci did not run)"
                self.results["targets"][name] = {"error": msg}
                self.failures.append(msg)
                continue
            print(f"== {name}", flush=True)
            t0 = time.monotonic()
            try:
                self.results["targets"][name] = await self.run_target(name)
            except Exception as exc:
                traceback.print_exc()
                self.results["targets"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                self.failures.append(f"{name}: {exc}")
            self.results["targets"][name]["elapsed_s"] = round(time.monotonic() - t0, 1)
            if name == "parley" and "ingest" in self.workloads:
                for variant, flags in INGEST_VARIANTS.items():
                    try:
                        result = await self.run_parley_ingest(variant, flags)
                    except Exception as exc:
                        result = {"error": f"{type(exc).__name__}: {exc}"}
                        self.failures.append(f"{variant}: {exc}")
                    self.results["targets"][variant] = result
        for workload, run in (("hello", self.run_hello), ("search", self.run_search)):
            if workload in self.workloads and "parley" in self.targets:
                await self.run_seeded(workload, run)
        if "multinode" in self.workloads and "parley" in self.targets:
            print("== multinode", flush=True)
            os.sched_setaffinity(0, self.all_cores)  # and so PostgreSQL and Redis, its children
            t0 = time.monotonic()
            self.results["targets"]["multinode"] = await self.run_multinode()
            self.results["targets"]["multinode"]["elapsed_s"] = round(time.monotonic() - t0, 1)
        self.results["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
        self.failures += workload_errors(self.results)
        self.write()
        shutil.rmtree(self.work, ignore_errors=True)
        if self.failures:
            print("FAILURES:\n  " + "\n  ".join(self.failures), flush=True)
            return 1
        return 0

    def write(self) -> None:
        sizes = sorted(self.cfg.fanout_sizes) if "fanout" in self.workloads else []
        stem = "smoke" if self.cfg.smoke else "latest"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        md = render_markdown(self.results, sizes)
        png = self.out_dir / f"{stem}.png"
        if sizes:
            try:
                plot(self.results, sizes, png)
                md += f"\n![latency against load]({png.name})\n"
            except Exception as exc:
                self.failures.append(f"plot: {exc}")
        (self.out_dir / f"{stem}.md").write_text(md)
        (self.out_dir / f"{stem}.json").write_text(json.dumps(self.results, indent=1) + "\n")
        print()
        print(md)
        print(f"written: {self.out_dir / stem}.md .json .png", flush=True)


async def run_suite(
    smoke: bool,
    out_dir: Path,
    peers_dir: Path,
    targets: list[str],
    workloads: list[str],
    sizes: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> int:
    cfg = Config.smoke_config() if smoke else Config()
    if sizes:
        cfg.fanout_sizes = sizes
    for key, value in (overrides or {}).items():
        setattr(cfg, key, type(getattr(cfg, key))(value))
    return await Suite(cfg, out_dir, peers_dir, targets, workloads).run()
