from __future__ import annotations

import pytest

from parley.core import check_password, check_room, check_text, check_username


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
