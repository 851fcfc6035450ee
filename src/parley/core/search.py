"""What full-text search matches (contract v2, docs/protocol.md "Search"), without I/O.

A word is a run of letters and digits (Unicode categories L* and N*), as SQLite's
`unicode61` tokenizer splits text (which also keeps private-use characters in words, a
difference of no practical weight); everything else separates words.
Words compare folded: lowercase, diacritics removed (é -> e, as `remove_diacritics 2`
does). A query word matches a word of a message that starts with it (a prefix), and a
message matches when every query word does. Both stores match by these rules: SQLite's
FTS5 index folds with its tokenizer; PostgreSQL indexes the words `index_words` gives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import Final

__all__ = [
    "MAX_QUERY_WORDS",
    "MAX_WORD",
    "fold",
    "held_words",
    "holds_all",
    "index_words",
    "match_ranges",
    "query_words",
    "words_of",
]

MAX_QUERY_WORDS: Final = 20  # the words of a query past these are ignored
MAX_WORD: Final = 100  # characters of a word that count: longer words match by these


# Runs of letters and digits (what str.isalnum() takes: Unicode L* and N*). One character
# class: an alternation per character is several times slower in `re`.
_WORD: Final = re.compile(r"[^\W_]+")


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """One character folded: lowercase without its combining marks (may be "" or longer)."""
    decomposed = unicodedata.normalize("NFD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def fold(word: str) -> str:
    if word.isascii():
        return word.lower()
    return "".join(_fold_char(c) for c in word)


def words_of(text: str) -> Iterator[tuple[int, int]]:
    """The (start, end) character ranges of the words of `text`."""
    for found in _WORD.finditer(text):
        yield found.span()


def query_words(query: str) -> list[str]:
    """The folded words a query searches for: at most MAX_QUERY_WORDS, each cut to
    MAX_WORD characters, without repeats; anything else in the query (quotes, `*`, `-`,
    parentheses, NEAR, NUL) only separates words."""
    found: list[str] = []
    for start, end in words_of(query):
        word = fold(query[start:end])[:MAX_WORD]
        if word and word not in found:
            found.append(word)
            if len(found) == MAX_QUERY_WORDS:
                break
    return found


def index_words(text: str) -> list[str]:
    """The distinct folded words of a message, each cut to MAX_WORD characters (what a
    query word, cut the same way, finds by prefix)."""
    if text.isascii():
        words = _WORD.findall(text.lower())
    else:
        words = [fold(word) for word in _WORD.findall(text)]
    return list(dict.fromkeys(word[:MAX_WORD] for word in words if word))


def holds_all(text: str, words: list[str]) -> bool:
    """Whether every one of `words` (folded query words) begins a word of `text`."""
    spaced = _spaced_words(text)
    return all(" " + w in spaced for w in words)


def held_words(text: str, words: list[str]) -> list[str]:
    """Those of `words` (folded query words) that begin a word of `text`."""
    spaced = _spaced_words(text)
    return [w for w in words if " " + w in spaced]


def _spaced_words(text: str) -> str:
    """The folded words of `text`, each after a space: a query word (word characters
    only) begins one of them when " " + it is a substring (a test in C, not a loop)."""
    if text.isascii():
        return " " + " ".join(_WORD.findall(text.lower()))
    return " " + " ".join(fold(word) for word in _WORD.findall(text))


def match_ranges(text: str, words: list[str]) -> list[tuple[int, int]]:
    """Where `words` (folded query words) match in `text`: for each word of the text that
    one of them begins, the range of the text it covers (the longest such prefix), in
    Unicode code points, ascending."""
    ranges = []
    for start, end in words_of(text):
        folded = [_fold_char(c) for c in text[start:end]]
        whole = "".join(folded)
        longest = max((len(w) for w in words if whole.startswith(w)), default=0)
        if longest:
            ranges.append((start, start + _chars_covering(folded, longest)))
    return ranges


def _chars_covering(folded: list[str], length: int) -> int:
    """How many characters of a word it takes for their folded forms to reach `length`."""
    total = 0
    for count, piece in enumerate(folded, 1):
        total += len(piece)
        if total >= length:
            return count
    return len(folded)
