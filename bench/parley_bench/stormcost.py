"""The server's cost per reconnect of the storm, measured so that other load does not move it.

`python -m parley_bench.stormcost [--clients N] [--missed M] [--rounds R] [--callgrind OUT]
[-- more serve flags]` starts Parley, joins N storm clients (stormclient.py) to "general",
then R times: drops them all, sends M messages while they are away, and reconnects them
all with `since` (`--concurrency` handshakes in flight), until every one has its M missed
messages and the server is quiet. It prints the server's CPU time per reconnect
(`/proc/PID/stat`, all threads; the kernel's part too) and this process's (the
generator's), and checks that no message was lost or doubled. With `--callgrind` the
server runs under valgrind's callgrind, its counters zeroed at the drop and dumped once
all resumed: instructions per reconnect, and a profile of just the storms in OUT
(`callgrind_annotate`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from parley_bench.client import OBSERVE, BenchClient, Hub, Target, connect_many
from parley_bench.ingestcost import callgrind_control, callgrind_instructions, parley_measured
from parley_bench.servers import cpu_split
from parley_bench.stats import check_sequence
from parley_bench.stormclient import StormClient, StormGroup, connect_group
from parley_bench.suite import register_users
from parley_bench.workloads import _quiet, _until

__all__ = ["main", "measure"]


async def _send(sender: BenchClient, hub: Hub, count: int, wait_s: float) -> None:
    """`count` messages; returns once all are acked."""
    acked = hub.acks + count
    for _ in range(count):
        sender.send_bench(hub.seq, 64)
        hub.seq += 1
    if not await _until(lambda: hub.acks >= acked, wait_s, 0.005):
        raise TimeoutError(f"{acked - hub.acks} sends not acked")


async def _storm(
    clients: list[StormClient], sender: BenchClient, hub: Hub, missed: int, concurrency: int
) -> None:
    """Drop every client, send `missed` messages, reconnect all with `since`, wait until
    each has resumed and the server is quiet."""
    for c in clients:
        c.resumed_ns = 0
        c.abort()
    await _until(lambda: not any(c.connected for c in clients), 60.0)
    await _send(sender, hub, missed, 60.0)

    def since(c: StormClient) -> int:
        return max(c.last_seq, c.first_target)

    res = await connect_group(clients, concurrency=concurrency, deadline_s=600.0, since=since)
    if res.failed:
        raise RuntimeError(f"{res.failed} reconnects failed: {res.errors}")
    if not await _until(lambda: all(c.resumed_ns for c in clients), 600.0):
        raise TimeoutError(f"{sum(not c.resumed_ns for c in clients)} clients never resumed")
    await _quiet(lambda: clients[0].group.frames, 0.5, 600.0)


async def measure(
    clients: int,
    missed: int,
    rounds: int,
    concurrency: int,
    callgrind: Path | None,
    flags: list[str],
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="parley-stormcost-") as tmp:
        async with parley_measured(Path(tmp), flags, callgrind) as (server, slow):
            tokens = await register_users(server.http_url, 40)
            target = Target("parley", server.ws_url, True, tokens, server.pid)
            hub = Hub()
            sender = BenchClient(hub, True, OBSERVE)
            await connect_many([sender], target, join=False, wait_s=30.0 * slow)
            group = StormGroup(target, "127.0.0.2")
            storm = [StormClient(group, i) for i in range(clients)]
            res = await connect_group(storm, concurrency=concurrency, deadline_s=60.0 * slow)
            if res.failed:
                raise RuntimeError(f"{res.failed} clients failed: {res.errors}")
            for c in storm:
                c.first_target = c.resume_target
            await _quiet(lambda: group.frames, 0.5, 60.0 * slow)
            await _storm(storm, sender, hub, missed, concurrency)  # warm-up
            if callgrind is not None:
                callgrind_control(server.pid, "-z")
            (user0, sys0), gen0 = cpu_split(server.pid), time.process_time()
            for _ in range(rounds):
                await _storm(storm, sender, hub, missed, concurrency)
            (user1, sys1), gen1 = cpu_split(server.pid), time.process_time()
            reconnects = clients * rounds
            per = 1e6 / reconnects
            result: dict[str, float] = {
                "reconnects": reconnects,
                "server_cpu_us_per_reconnect": round((user1 - user0 + sys1 - sys0) * per, 1),
                "of_which_system_us": round((sys1 - sys0) * per, 1),
                "generator_cpu_us_per_reconnect": round((gen1 - gen0) * per, 1),
            }
            if callgrind is not None:
                callgrind_control(server.pid, "-d")
                instructions = callgrind_instructions(callgrind)
                result["instructions_per_reconnect"] = round(instructions / reconnects)
            final = max(sender.ack_seq, *(c.last_seq for c in storm))  # what was acked
            lost_doubled = [check_sequence(c.seqs, c.first_target + 1, final) for c in storm]
            result["lost"] = sum(lost for lost, _ in lost_doubled)
            result["doubled"] = sum(doubled for _, doubled in lost_doubled)
            result["errors"] = hub.errors + sum(group.errors.values())
            for c in storm:
                c.abort()
            sender.close()
            await asyncio.sleep(0.2)
            return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_bench.stormcost")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--missed", type=int, default=10, help="messages sent while away")
    parser.add_argument("--rounds", type=int, default=3, help="storms measured")
    parser.add_argument("--concurrency", type=int, default=250, help="handshakes in flight")
    parser.add_argument("--callgrind", type=Path, default=None, help="callgrind's output file")
    parser.add_argument("flags", nargs="*", help="more `parley serve` flags (after --)")
    args = parser.parse_args(argv)
    result = uvloop.run(
        measure(
            args.clients, args.missed, args.rounds, args.concurrency, args.callgrind, args.flags
        )
    )
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
