"""Command line: `python -m parley_bench {suite,sink,conn-worker,storm-worker}`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvloop

from parley_bench.servers import raise_fd_limit
from parley_bench.suite import ALL_TARGETS, ALL_WORKLOADS, run_suite


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _set_priority(nice: int) -> None:
    """Niceness for this process and its children, and for its scheduler autogroup: with
    autogroups on, a process's nice only ranks it within its own session, so run.sh starts
    the suite in a session of its own and we raise that session's weight too."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        print(f"bench: cannot set niceness {nice}: {exc}", file=sys.stderr)
    try:
        with open("/proc/self/autogroup", "w") as fh:
            fh.write(str(nice))
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_bench")
    sub = parser.add_subparsers(dest="cmd", required=True)

    suite = sub.add_parser("suite", help="run the workloads against the servers, write the report")
    suite.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it all runs")
    suite.add_argument("--out", type=Path, default=Path("bench/results"))
    suite.add_argument("--peers", type=Path, default=Path("bench/peers"))
    suite.add_argument("--targets", type=_csv, default=list(ALL_TARGETS))
    suite.add_argument("--workloads", type=_csv, default=list(ALL_WORKLOADS))
    suite.add_argument("--sizes", type=_csv, default=None, help="fan-out client counts")
    suite.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a Config field"
    )
    suite.add_argument(
        "--nice",
        type=int,
        default=None,
        help="run the generator and the servers at this niceness (e.g. -10 on a shared box)",
    )

    sink = sub.add_parser("sink", help="the trivial broadcast/echo server (generator ceiling)")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, required=True)

    for kind, workload in (("conn-worker", "idle-connections"), ("storm-worker", "storm")):
        worker = sub.add_parser(kind, help=f"one process of the {workload} workload")
        worker.add_argument("--spec", required=True)
        worker.add_argument("--count", type=int, required=True)
        worker.add_argument("--offset", type=int, default=0)
        worker.add_argument("--addr", default="127.0.0.1")
        worker.add_argument("--concurrency", type=int, default=100)

    args = parser.parse_args(argv)
    raise_fd_limit()
    if args.cmd == "suite":
        if args.nice is not None:
            _set_priority(args.nice)
        bad = set(args.targets) - set(ALL_TARGETS) | set(args.workloads) - set(ALL_WORKLOADS)
        if bad:
            parser.error(f"unknown target/workload: {', '.join(sorted(bad))}")
        overrides = dict(kv.split("=", 1) for kv in args.set)
        sizes = [int(s) for s in args.sizes] if args.sizes else None
        return uvloop.run(
            run_suite(
                args.smoke, args.out, args.peers, args.targets, args.workloads, sizes, overrides
            )
        )
    if args.cmd == "sink":
        from parley_bench.sink import serve_sink

        uvloop.run(serve_sink(args.host, args.port))
        return 0
    from parley_bench.workloads import conn_worker, storm_worker

    run_worker = conn_worker if args.cmd == "conn-worker" else storm_worker
    uvloop.run(run_worker(args.spec, args.count, args.offset, args.addr, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
