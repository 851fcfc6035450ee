from __future__ import annotations

import pytest

from parley.core import (
    check_password,
    check_room,
    check_text,
    check_username,
    one_line,
    text_refusal,
)
from parley.protocol import ErrorCode


@pytest.mark.parametrize("name", ["a", "Alice_1", "x.y-z", "a" * 32])
def test_valid_usernames(name: str) -> None:
    assert check_username(name) is None


@pytest.mark.parametrize("name", ["", "a" * 33, "bad name", "é", "guest-1234", None, 5])
def test_invalid_usernames(name: object) -> None:
    assert check_username(name)


@pytest.mark.parametrize(
    ("pw", "ok"),
    [("1234567", False), ("12345678", True), ("x" * 256, True), ("x" * 257, False), (None, False)],
)
def test_password_length(pw: object, ok: bool) -> None:
    assert (check_password(pw) is None) is ok


@pytest.mark.parametrize(
    ("room", "ok"),
    [
        ("general", True),
        ("a-b_9", True),
        ("A", False),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
    ],
)
def test_room_names(room: str, ok: bool) -> None:
    assert (check_room(room) is None) is ok


def test_text_rules() -> None:
    assert check_text("hi", 4000) is None
    assert check_text("x" * 4000, 4000) is None
    assert check_text("x" * 4001, 4000)
    assert check_text("   \n", 4000)
    assert check_text("a\x00b", 4000) == "text contains a NUL character"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \t\n\r\u00a0\u3000\u2028\u2029",  # white space of all kinds
        "\u200b",  # zero-width space
        "\u200c\u200d\u2060",  # zero-width non-joiner, joiner, word joiner
        "\ufeff",  # byte order mark
        "\u115f\u1160\u3164\uffa0",  # Hangul fillers
        "\u2800",  # braille pattern blank
        "\u00ad\u034f\u180e\u200e\u202e\u2066",  # soft hyphen, CGJ, bidi marks and controls
        "\ufe0f\U000e0041\U000e007f",  # a variation selector, tag characters
        "\x01\x1b\x7f\x85",  # controls
        " \u200b \u2800 ",
    ],
)
def test_invisible_texts_are_refused(text: str) -> None:
    assert check_text(text, 4000) == "text is empty or only invisible characters"


@pytest.mark.parametrize("text", ["a\u200b", "\u200bx", "\u0301", "😀", "\u2800a", " . ", "\u0600"])
def test_a_visible_character_is_enough(text: str) -> None:
    assert check_text(text, 4000) is None


@pytest.mark.parametrize("char", [chr(code) for code in range(0x21, 0x7F)])
def test_the_shortcut_for_a_visible_first_character_agrees_with_the_search(char: str) -> None:
    # A text starting with "!" to "~" is taken as visible without searching it; the
    # search (reached when an invisible character comes first) finds the same.
    assert check_text(char, 4000) is None
    assert check_text("\u200b" + char, 4000) is None
    assert check_text(char + "\x00", 4000) == "text contains a NUL character"


@pytest.mark.parametrize("first", [" ", "\x7f", "\u00a0", "\u200b"])
def test_a_first_character_beside_the_shortcut_is_searched(first: str) -> None:
    assert check_text(first, 4000) == "text is empty or only invisible characters"
    assert check_text(first + "x", 4000) is None


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("plain words, unchanged", "plain words, unchanged"),
        ("hi\nalice: my new password is x", "hi\\nalice: my new password is x"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[2K\x00\x7f\x85", "\\u001b[2K\\u0000\\u007f\\u0085"),
        ("one\u2028two\u2029three", "one\\u2028two\\u2029three"),
        ("\u202eevil\u202c \u2066x\u2069", "\\u202eevil\\u202c \\u2066x\\u2069"),
        ("é 中文 עברית \u200f 😀 a\\nb", "é 中文 עברית \u200f 😀 a\\nb"),  # kept as they are
    ],
)
def test_one_line_escapes_what_breaks_or_reorders_a_line(text: str, line: str) -> None:
    assert one_line(text) == line
    assert not any(c in line for c in "\n\r\u2028\u2029\u0085\u202e")


def test_a_postable_text_is_not_refused() -> None:
    assert text_refusal("hi", 10) is None
    assert text_refusal("x" * 10, 10) is None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("x" * 11, ErrorCode.TOO_LARGE),
        (" " * 11, ErrorCode.TOO_LARGE),  # too long comes first: shortening it is the cure
        ("   ", ErrorCode.BAD_REQUEST),
        ("a\x00b", ErrorCode.BAD_REQUEST),
    ],
)
def test_a_refused_text_maps_to_its_error_code(text: str, code: ErrorCode) -> None:
    error = text_refusal(text, 10)
    assert error is not None
    assert error.code is code
    assert error.message == check_text(text, 10)
