"""The search workload's queries (bench/parley_bench/search.py)."""

from __future__ import annotations

from parley.core.search import query_words
from parley_bench.hello import WORDS, SeedSpec, room_plan
from parley_bench.search import search_queries

SPEC = SeedSpec(rooms=20, private_rooms=3, messages=20_000)


def test_queries_are_the_same_every_run_and_of_one_to_four_words() -> None:
    queries = search_queries(SPEC, 100)
    assert queries == search_queries(SPEC, 100)
    counts = {len(query_words(q["q"])) for q in queries}
    assert counts <= {1, 2, 3, 4}
    assert {1, 2, 3} <= counts


def test_queries_are_prefixes_of_the_seeds_words_some_in_one_room() -> None:
    queries = search_queries(SPEC, 100)
    names = {name for name, _, _ in room_plan(SPEC)}
    for query in queries:
        assert query.get("room", "general") in names
        for word in query_words(query["q"]):
            assert word == "zyzzyva" or any(w.startswith(word) for w in WORDS)
    assert sum("room" in q for q in queries) == 20
    assert sum("zyzzyva" in q["q"] for q in queries) == 10
