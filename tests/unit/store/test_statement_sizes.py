"""The sizes of the multi-row statements a batch's rows are split into."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parley.store.sqlite import _LARGEST_STATEMENT, _sized_sql, _statement_sizes


@given(st.integers(min_value=0, max_value=5000))
def test_sizes_are_few_fixed_powers_of_two_that_add_up(count: int) -> None:
    sizes = _statement_sizes(count)
    assert sum(sizes) == count
    assert sizes == sorted(sizes, reverse=True)
    assert all(size & (size - 1) == 0 and 0 < size <= _LARGEST_STATEMENT for size in sizes)
    smaller = [size for size in sizes if size < _LARGEST_STATEMENT]
    assert len(smaller) == len(set(smaller))  # each smaller size at most once


def test_examples() -> None:
    assert _statement_sizes(0) == []
    assert _statement_sizes(1) == [1]
    assert _statement_sizes(400) == [256, 128, 16]
    assert _statement_sizes(700) == [256, 256, 128, 32, 16, 8, 4]


def test_row_marks_after_a_shared_parameter_are_numbered_after_it() -> None:
    sql = ("INSERT INTO t (a, b, c) VALUES ", "(?,?1,?)", " -- x")
    assert _sized_sql(sql, 2) == "INSERT INTO t (a, b, c) VALUES (?2,?1,?3),(?4,?1,?5) -- x"
    assert _sized_sql(("V ", "(?,?)", ""), 2) == "V (?,?),(?,?)"
