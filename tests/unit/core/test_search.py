"""What a search matches (parley.core.search): words, folding, prefixes, ranges."""

from __future__ import annotations

from parley.core.search import (
    MAX_QUERY_WORDS,
    MAX_WORD,
    fold,
    held_words,
    holds_all,
    index_words,
    match_ranges,
    query_words,
)


def test_words_are_runs_of_letters_and_digits_folded() -> None:
    assert index_words("Café-CRÈME, x_y 42! Ünïcödé") == [
        "cafe",
        "creme",
        "x",
        "y",
        "42",
        "unicode",
    ]
    assert index_words("İstanbul ǅemal ΣΊΣΥΦΟΣ") == ["istanbul", "ǆemal", "σισυφοσ"]
    assert index_words("😀 🎉 ... ") == []
    assert fold("Ärger") == "arger"


def test_query_syntax_is_only_separators() -> None:
    assert query_words('"quoted" NEAR(a b, 2) x* -y (z OR w) col:text ^s \x00') == [
        "quoted",
        "near",
        "a",
        "b",
        "2",
        "x",
        "y",
        "z",
        "or",
        "w",
        "col",
        "text",
        "s",
    ]
    assert query_words('* - ( ) " :') == []
    assert query_words("again Again AGAIN") == ["again"]


def test_queries_are_capped_in_words_and_word_length() -> None:
    assert query_words(" ".join(f"w{i}" for i in range(1000))) == [
        f"w{i}" for i in range(MAX_QUERY_WORDS)
    ]
    assert query_words("a" * 5000) == ["a" * MAX_WORD]
    assert index_words("b" * 5000) == ["b" * MAX_WORD]


def test_every_word_must_begin_a_word_of_the_text() -> None:
    text = "Deploying the build, again"
    assert holds_all(text, ["deploy", "bui"])
    assert not holds_all(text, ["deploy", "ploy"])
    assert not holds_all(text, ["deploying", "zebra"])


def test_ranges_cover_the_matched_prefix_in_code_points() -> None:
    text = "😀 Crème brûlée, CRÈMES"
    assert match_ranges(text, ["creme"]) == [(2, 7), (16, 21)]
    assert match_ranges(text, ["bru", "brulee"]) == [(8, 14)]
    assert match_ranges(text, ["zzz"]) == []
    # a decomposed accent (a combining mark) is no letter: it ends the word, as in FTS5
    assert match_ranges("cafe\u0301 ok", ["cafe"]) == [(0, 4)]


def test_held_words_are_those_that_begin_a_word() -> None:
    text = "Deploy the build, then lunch"
    assert held_words(text, ["lun", "zebra", "dep", "ploy"]) == ["lun", "dep"]
    assert held_words(text, []) == []
    assert held_words("", ["a"]) == []
