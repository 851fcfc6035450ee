"""The report: table rows, goal check and plot from a results dict (no servers needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley_bench.report import evaluate_goals, plot, render_markdown, table_rows


def _step(rate: float, p99: float) -> dict[str, Any]:
    lat = {"count": 100.0, "p50": p99 / 4, "p99": p99, "p999": p99 * 2, "max": p99 * 3}
    return {"delivered_per_s": rate, "latency_ms": lat, "sustained": True}


def _fanout(top: float, p99: float) -> dict[str, Any]:
    return {
        "1000": {
            "max_deliveries_per_s": top,
            "steps": [_step(top / 2, p99 / 2), _step(top, p99)],
            "at50": _step(top / 2, p99 / 2),
            "at90": _step(top * 0.9, p99),
            "at_node50": _step(100_000, p99 / 3),
        }
    }


RESULTS: dict[str, Any] = {
    "meta": {"date": "today", "smoke": False, "machine": "test"},
    "targets": {
        "parley": {
            "fanout": _fanout(400_000, 10),
            "connections": {"requested": 19000, "held": 19000, "kib_per_conn": 3.1},
            "ingest": {"acked_per_s": 30_000, "ack_latency_ms": {"p99": 9.0}},
            "storm": {
                "clients": 5000,
                "resume_all_s": 3.2,
                "lost": 0,
                "doubled": 0,
                "all_resumed": True,
            },
        },
        "parley_single": {"ingest": {"acked_per_s": 2_000}},
        "node": {"fanout": _fanout(200_000, 40)},
        "python": {"fanout": _fanout(40_000, 400), "storm": {"error": "boom"}},
    },
}


def test_goals_are_evaluated_from_the_figures() -> None:
    goals = {g["goal"]: g for g in evaluate_goals(RESULTS)}
    parley_v1 = goals["Fan-out 1,000 (parley.v1): Parley / Node ws deliveries/s"]
    assert (parley_v1["measured"], parley_v1["met"]) == (2.0, False)  # issue 16: ≥ 10×
    assert goals["Fan-out 1,000: Parley / Python websockets deliveries/s"]["measured"] == 10.0
    assert goals["Group commit / one commit per message"]["measured"] == 15.0
    assert goals["Server memory per idle connection (KiB)"]["met"] is True
    storm = next(g for g in goals.values() if g["goal"].startswith("Reconnect storm"))
    assert storm["met"] is False  # 3.2 s: issue 16 asks under 2
    fast = {**RESULTS["targets"]["parley"]["storm"], "resume_all_s": 1.5}
    results = {"targets": {"parley": {**RESULTS["targets"]["parley"], "storm": fast}}}
    storm = next(g for g in evaluate_goals(results) if g["goal"].startswith("Reconnect storm"))
    assert storm["met"] is True


def test_missing_figures_are_not_measured_rather_than_failed() -> None:
    goals = evaluate_goals({"targets": {}})
    assert all(g["met"] is None for g in goals)


def test_table_has_ratios_and_errors_are_listed() -> None:
    rows = table_rows(RESULTS, [1000])
    top = next(r for r in rows if r[1] == "highest sustained deliveries/s")
    assert top[2:7] == ("400,000", "200,000", "40,000", "2.00×", "10.00×")
    md = render_markdown(RESULTS, [1000])
    assert "| Fan-out N=1,000 |" in md
    assert "python storm: boom" in md


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "plot.png"
    plot(RESULTS, [1000], out)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_smoke_fails_on_broken_workloads_but_not_on_slow_machines() -> None:
    from parley_bench.suite import workload_errors

    results = {
        "targets": {
            "parley": {
                "fanout": {"20": {"error": "no sustained rate found"}},
                "storm": {"error": "3 clients failed to connect"},
                "exit_code": 0,
            },
            "node": {"fanout": {"20": {"max_deliveries_per_s": 5}}},
        }
    }
    assert workload_errors(results) == ["parley storm: 3 clients failed to connect"]


def _multinode(top: float, lost: int = 0) -> dict[str, Any]:
    check = {"messages": 40, "clients": 1000, "lost": lost, "doubled": 0, "out_of_order": 0}
    return {
        "clients": 1000,
        "clients_per_node": [500, 500],
        "max_deliveries_per_s": top,
        "at_max": _step(top, 50) | {"server_us_per_delivery": 2.5, "other_cpu": 0.4},
        "at50": _step(top / 2, 20),
        "exactly_once": check,
    }


def test_multinode_section_lists_setups_and_the_exactly_once_check() -> None:
    results = {
        "meta": {"date": "today", "smoke": False, "machine": "test"},
        "targets": {
            "multinode": {
                "one_node": _multinode(200_000),
                "two_nodes_redis": _multinode(300_000) | {"error": "exactly-once check failed"},
                "elapsed_s": 100.0,
            }
        },
    }
    md = render_markdown(results, [])
    assert "## Multi-node fan-out" in md
    assert "| 1 node, PostgreSQL | 2 nodes, PostgreSQL + Redis |" in md
    assert "| highest sustained deliveries/s | 200,000 | 300,000 |" in md
    assert "| … relative to 1 node | 1.00× | 1.50× |" in md
    assert "| exactly-once check: messages × clients | 40 × 1,000 | 40 × 1,000 |" in md
    assert "## Goals" not in md  # only the multi-node workload ran
    assert "multinode two_nodes_redis: exactly-once check failed" in md


def test_multinode_errors_fail_the_run_but_a_skip_does_not() -> None:
    from parley_bench.suite import workload_errors

    failed = {"targets": {"multinode": {"two_nodes_redis": {"error": "exactly-once: lost 3"}}}}
    assert workload_errors(failed) == ["multinode two_nodes_redis: exactly-once: lost 3"]
    skipped = {"targets": {"multinode": {"skipped": "initdb not found"}}}
    assert workload_errors(skipped) == []
    assert "Not run: initdb not found" in render_markdown(skipped, [])


def _hello(p99: float, rooms: int = 100, messages: int = 1_000_000) -> dict[str, Any]:
    seed: dict[str, Any] = {"rooms": rooms, "private_rooms": 8, "messages": messages}
    seed |= {
        "authors": 8,
        "mentions": messages // 20,
        "read_markers": 66,
        "db_mib": 120.5,
        "cached": True,
    }
    lat = {"count": 200.0, "p50": 1.25, "p90": 2.5, "p99": p99, "p999": p99, "max": 9.75}
    api = {"count": 200.0, "p50": 1.5, "p90": 3.0, "p99": 4.5, "p999": 4.5, "max": 6.0}
    return {
        "seed": seed,
        "samples": 200,
        "hello_ms": lat,
        "hello_first_ms": 7.5,
        "hello_rooms": rooms,
        "hello_bytes": 5400,
        "rooms_api_ms": api,
        "other_cpu": 0.25,
        "hello_counts": {"unread": 1200, "mentions": 30},
        "counted_at_read_time": {"unread": 1200, "mentions": 31},
    }


def _hello_goal(hello: dict[str, Any]) -> dict[str, Any]:
    results = {"targets": {"parley": {"hello": hello}}}
    return next(g for g in evaluate_goals(results) if g["goal"].startswith("hello p99"))


def test_hello_goal_is_met_below_5_ms_at_the_full_seed() -> None:
    goal = _hello_goal(_hello(4.25))
    assert goal["goal"] == "hello p99 < 5 ms at 100 rooms / 1,000,000 messages"
    assert (goal["measured"], goal["met"]) == (4.25, True)
    assert _hello_goal(_hello(5.0))["met"] is False


def test_hello_goal_is_not_judged_on_a_smaller_seed() -> None:
    goal = _hello_goal(_hello(0.5, rooms=20, messages=20_000))
    assert goal["met"] is None
    assert goal["note"] == "seed of 20 rooms / 20,000 messages only"
    assert _hello_goal({"error": "boom"})["met"] is None


def test_hello_section_shows_both_latencies_and_the_goal() -> None:
    md = render_markdown({"meta": {}, "targets": {"parley": {"hello": _hello(6.5)}}}, [])
    assert "## hello at scale" in md
    assert "A database of 100 rooms (8 private, the user a member of each) and 1,000,000" in md
    assert "| `hello` after the connect, 200 sockets | 1.25 | 2.50 | 6.50 | 9.75 |" in md
    assert "| GET /api/rooms, 200 requests | 1.50 | 3.00 | 4.50 | 6.00 |" in md
    assert "Meanwhile other processes used 0.25 of the" in md
    assert "their counts summed 1,200 unread and 30 mentions (counted from the messages: " in md
    assert "1,200 and 31)" in md
    assert "| hello p99 < 5 ms at 100 rooms / 1,000,000 messages | 6.50 | < 5 ms | **no** |" in md


def test_no_hello_section_when_the_workload_did_not_run() -> None:
    assert "## hello at scale" not in render_markdown(RESULTS, [1000])


def _search(p99: float, messages: int = 1_000_000) -> dict[str, Any]:
    lat = {"p50": 2.0, "p90": 8.0, "p99": p99, "max": p99 + 5}
    seed = {"rooms": 100, "messages": messages}
    return {"seed": seed, "samples": 500, "search_ms": lat, "full_pages": 400, "empty": 60}


def _search_goal(search: dict[str, Any]) -> dict[str, Any]:
    results = {"targets": {"parley": {"search": search}}}
    return next(g for g in evaluate_goals(results) if g["goal"].startswith("search p99"))


def test_search_goal_is_met_below_50_ms_at_the_full_seed_only() -> None:
    goal = _search_goal(_search(31.5))
    assert goal["goal"] == "search p99 < 50 ms at 1,000,000 messages (SQLite)"
    assert (goal["measured"], goal["met"]) == (31.5, True)
    assert _search_goal(_search(50.0))["met"] is False
    small = _search_goal(_search(1.0, messages=20_000))
    assert (small["met"], small["note"]) == (None, "seed of 100 rooms / 20,000 messages only")
    assert _search_goal({"error": "boom"})["met"] is None


def test_search_section_shows_the_latencies() -> None:
    md = render_markdown({"meta": {}, "targets": {"parley": {"search": _search(31.5)}}}, [])
    assert "## search at scale" in md
    assert "| GET /api/search, 500 queries | 2.00 | 8.00 | 31.50 | 36.50 |" in md
    assert "400 filled a page of 20, 60 found nothing" in md
    assert "## search at scale" not in render_markdown(RESULTS, [1000])


def _tutorial(top: float, past: float) -> dict[str, Any]:
    return {
        "clients": 1000,
        "max_deliveries_per_s": top,
        "at50": _step(top / 2, 5),
        "at90": _step(top * 0.9, 9),
        "past": _step(past, 900),
        "past_of_max": round(past / top, 3),
    }


def test_tutorial_rows_goals_and_the_pinned_cores() -> None:
    results = {
        "meta": {
            "date": "today",
            "smoke": False,
            "machine": "test",
            "cores": {"server": [0], "generator": [1]},
            "config": {"past_factor": 2.0},
        },
        "targets": {
            "parley": {
                "tutorial": _tutorial(1_200_000, 1_140_000) | {"at_node50": _step(100_000, 4)}
            },
            "node": {"tutorial": _tutorial(200_000, 150_000)},
        },
    }
    rows = table_rows(results, [])
    top = next(r for r in rows if r[0] == "Tutorial mode N=1,000, 1 sender")
    assert top[1:6] == ("highest sustained deliveries/s", "1,200,000", "200,000", "–", "6.00×")
    at_node50 = next(r for r in rows if r[1].endswith("at 50% of Node's max (100,000/s)"))
    assert at_node50[0:3] == ("Tutorial mode N=1,000, 1 sender", at_node50[1], "1.0 / 4.0 / 8.0")
    past = next(r for r in rows if r[1] == "deliveries/s offered 2× own max (past saturation)")
    assert past[2:4] == ("1,140,000", "150,000")
    goals = {g["goal"]: g for g in evaluate_goals(results)}
    assert goals["Tutorial mode 1,000: Parley / Node ws deliveries/s"]["met"] is True
    held = next(g for g in goals.values() if g["goal"].startswith("Tutorial mode past"))
    assert (held["measured"], held["met"]) == (0.95, True)
    md = render_markdown(results, [])
    assert "**Pinned**: every single-node server (the sinks too) runs on core 0 only" in md
    assert "ONE of them sends" in md


def test_a_collapse_past_saturation_misses_the_goal() -> None:
    results = {"targets": {"parley": {"tutorial": _tutorial(200_000, 20_000)}}}
    held = next(g for g in evaluate_goals(results) if g["goal"].startswith("Tutorial mode past"))
    assert held["met"] is False
    assert "not pinned" in render_markdown(results, [])
