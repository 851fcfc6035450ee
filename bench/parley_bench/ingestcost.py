"""The server's cost per ingested message, measured so that other load does not move it.

`python -m parley_bench.ingestcost [--in-flight W] [--messages N] [--callgrind OUT]`
starts Parley, connects the ingest workload's clients, and runs exactly N messages
through it after a warm-up, with nothing in flight before and after. It prints the
server's CPU time per message (`/proc/PID/stat`, all threads), and with `--callgrind`
runs the server under valgrind's callgrind with its counters zeroed before the N
messages and dumped after them: instructions per message, and a profile of just those
messages in OUT (read it with `callgrind_annotate`). `--syscalls` counts the server's
system calls over those messages instead (strace -c: reads and writes per message, to see
that frames and acks are batched). Wall-clock rates on a shared machine move by tens of
percent; these counts do not (callgrind's: by well under 1%).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from parley_bench.client import INGEST, BenchClient, Hub, Target, connect_many
from parley_bench.servers import ServerProc, cpu_seconds, free_port, parley_command
from parley_bench.suite import register_users
from parley_bench.workloads import LOCAL_ADDRS, _until

__all__ = ["callgrind_control", "callgrind_instructions", "main", "measure", "parley_measured"]


@contextlib.asynccontextmanager
async def parley_measured(
    tmp: Path, flags: list[str], callgrind: Path | None
) -> AsyncIterator[tuple[ServerProc, float]]:
    """`parley serve` on a fresh database under `tmp` (under callgrind when asked, writing
    to `callgrind`), stopped after; with how many times slower than usual it is to wait
    for it."""
    port = free_port()
    cmd = parley_command(tmp / "data", port, ["--hash-profile", "owasp", *flags])
    slow = 1.0
    if callgrind is not None:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}", *cmd]
        slow = 60.0
    server = ServerProc("parley", cmd, port, tmp / "server.log", ws_path="/chat", parley=True)
    await server.start(wait_s=30.0 * slow)
    try:
        yield server, slow
    finally:
        server.stop()


async def _run_until(clients: list[BenchClient], hub: Hub, count: int, wait_s: float) -> None:
    """Send until `count` more acks arrived, then stop and wait until none is in flight."""
    target = hub.acks + count
    hub.stop_sending = False
    for c in clients:
        c.start_ingest()
    sent = await _until(lambda: hub.acks >= target, wait_s)
    hub.stop_sending = True
    drained = await _until(lambda: not any(c.pending_ns for c in clients), wait_s)
    if not (sent and drained):
        raise TimeoutError(f"{hub.acks} acks, wanted {target}")


def callgrind_control(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


def _syscalls(report: str) -> dict[str, int]:
    """{name: calls} from strace -c's table."""
    counts = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    return counts


def callgrind_instructions(out: Path) -> int:
    """The instructions ("Ir") of the last dump callgrind wrote for `out`."""
    dumps = sorted(out.parent.glob(out.name + "*"), key=lambda p: p.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"no totals in {dumps[-1]}")


async def measure(
    in_flight: int,
    messages: int,
    clients: int,
    callgrind: Path | None,
    flags: list[str],
    syscalls: bool = False,
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="parley-ingestcost-") as tmp:
        async with parley_measured(Path(tmp), flags, callgrind) as (server, slow):
            tokens = await register_users(server.http_url, 4)
            target = Target("parley", server.ws_url, True, tokens, server.pid)
            hub = Hub()
            group = [BenchClient(hub, True, INGEST, ident=i) for i in range(clients)]
            for c in group:
                c.window = in_flight
            res = await connect_many(
                group, target, join=False, local_addrs=LOCAL_ADDRS, wait_s=30.0 * slow
            )
            if res.failed:
                raise RuntimeError(f"{res.failed} clients failed: {res.errors}")
            await _run_until(group, hub, max(messages // 5, clients), 10.0 * slow)
            if callgrind is not None:
                callgrind_control(server.pid, "-z")
            tracer = None
            if syscalls:
                trace = ["strace", "-c", "-f", "-p", str(server.pid)]
                tracer = subprocess.Popen(trace, stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
                await asyncio.sleep(1.0)  # attached to every thread
            cpu0, acks0 = cpu_seconds(server.pid), hub.acks
            await _run_until(group, hub, messages, 30.0 * slow)
            cpu1, acks1 = cpu_seconds(server.pid), hub.acks
            count = acks1 - acks0
            result: dict[str, float] = {
                "messages": count,
                "cpu_us_per_message": round((cpu1 - cpu0) / count * 1e6, 2),
                "errors": hub.errors,
            }
            if tracer is not None:
                tracer.send_signal(signal.SIGINT)
                _, report = tracer.communicate(timeout=30)
                for name, calls in sorted(_syscalls(report).items()):
                    if calls >= count // 100:
                        result[f"{name}_per_message"] = round(calls / count, 3)
            if callgrind is not None:
                callgrind_control(server.pid, "-d")
                result["instructions_per_message"] = round(
                    callgrind_instructions(callgrind) / (acks1 - acks0)
                )
            for c in group:
                c.close()
            await asyncio.sleep(0.2)
            return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_bench.ingestcost")
    parser.add_argument("--in-flight", type=int, default=1, help="sends in flight per client")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--callgrind", type=Path, default=None, help="callgrind's output file")
    parser.add_argument("--syscalls", action="store_true", help="count system calls (strace)")
    parser.add_argument("flags", nargs="*", help="more `parley serve` flags (after --)")
    args = parser.parse_args(argv)
    result = asyncio.run(
        measure(
            args.in_flight, args.messages, args.clients, args.callgrind, args.flags, args.syscalls
        )
    )
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
