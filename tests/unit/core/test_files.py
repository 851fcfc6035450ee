"""core/files.py: what type bytes are, what a file is called, how it is served."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from parley.core.files import (
    MAX_NAME_CHARS,
    ByteRange,
    TextCheck,
    claimed_type,
    clean_name,
    content_disposition,
    new_file_id,
    parse_range,
    sniff,
    thumb_type,
)
from parley.protocol.fields import FILE_ID_PATTERN


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"GIF87a\x01\x00", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "application/octet-stream"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"hello", "application/octet-stream"),  # text or not: TextCheck tells
        (b"", "application/octet-stream"),
        (b"\x89PNG", "application/octet-stream"),  # cut short
    ],
)
def test_sniff_reads_magic_numbers(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


def _is_text(*chunks: bytes) -> bool:
    check = TextCheck()
    for chunk in chunks:
        check.feed(chunk)
    check.feed(b"", final=True)
    return check.text


def test_text_is_utf8_without_control_characters() -> None:
    assert _is_text(b"hello\tworld\r\n", "caf\u00e9 \u2603".encode())
    snowman = "\u2603".encode()  # three bytes, split across chunks
    assert _is_text(b"a" + snowman[:1], snowman[1:2], snowman[2:] + b"b")
    assert not _is_text(b"a\x00b")
    assert not _is_text(b"bell \x07")
    assert not _is_text(b"\xff\xfe")
    assert not _is_text(b"cut " + snowman[:2])  # the end in mid-character


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.PNG", "image/png"),
        ("a.jpeg", "image/jpeg"),
        ("a.jpg", "image/jpeg"),
        ("x.tar.gif", "image/gif"),
        ("doc.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
        ("a.webp", "image/webp"),
        ("archive.zip", None),
        ("README", None),
        (".png", None),  # a hidden file's name, not an extension
    ],
)
def test_claimed_type_by_extension(name: str, expected: str | None) -> None:
    assert claimed_type(name) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../x", "x"),
        ("..\\..\\windows\\evil.exe", "evil.exe"),
        ("/etc/passwd", "passwd"),
        ("a\nb\r\x00c.txt", "abc.txt"),
        ("\u202egnp.exe", "gnp.exe"),  # a right-to-left override
        ("  spaced  ", "spaced"),
        ("", "file"),
        (None, "file"),
        ("..", "file"),
        ("dir/", "file"),
        ("\x01\x02", "file"),
        ("caf\u00e9 \u2603.txt", "caf\u00e9 \u2603.txt"),
    ],
)
def test_clean_name_keeps_a_label(raw: str | None, expected: str) -> None:
    assert clean_name(raw) == expected


def test_clean_name_is_at_most_255_characters() -> None:
    assert clean_name("x" * 1000 + ".png") == "x" * MAX_NAME_CHARS


@pytest.mark.parametrize(
    "name", ['quote".png', "new\r\nline: injected", "caf\u00e9 \u2603.txt", "a\\b", "100% ;="]
)
def test_content_disposition_is_one_safe_header_value(name: str) -> None:
    value = content_disposition(name, inline=False)
    assert value.isascii()
    assert "\r" not in value
    assert "\n" not in value
    assert value.startswith("attachment; ")
    star = re.search(r"filename\*=UTF-8''(\S+)$", value)
    assert star is not None
    assert unquote(star[1]) == name
    fallback = re.search(r'filename="([^"]*)";', value)
    assert fallback is not None
    assert len(fallback[1]) == len(name)  # every character kept or made `_`
    assert content_disposition("a.png", inline=True).startswith('inline; filename="a.png"; ')


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-4", 10, ByteRange(0, 4, 10)),
        ("bytes=5-", 10, ByteRange(5, 9, 10)),
        ("bytes=-3", 10, ByteRange(7, 9, 10)),
        ("bytes=-30", 10, ByteRange(0, 9, 10)),
        ("bytes=8-100", 10, ByteRange(8, 9, 10)),
        ("bytes=9-9", 10, ByteRange(9, 9, 10)),
        ("bytes=10-", 10, False),
        ("bytes=10-20", 10, False),
        ("bytes=-0", 10, False),
        ("bytes=0-", 0, False),
        ("bytes=5-2", 10, None),  # invalid: ignored
        ("bytes=0-1,4-5", 10, None),  # several ranges: the whole file
        ("items=0-1", 10, None),
        ("bytes=-", 10, None),
        ("bytes=abc", 10, None),
        ("bytes=" + "9" * 30 + "-", 10, False),
    ],
)
def test_parse_range(header: str | None, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


def test_byte_range_headers() -> None:
    span = ByteRange(2, 5, 10)
    assert (span.length, span.content_range()) == (4, "bytes 2-5/10")


def test_file_ids_are_random_and_fit_the_pattern() -> None:
    ids = {new_file_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.search(FILE_ID_PATTERN, i) for i in ids)


def test_thumbnails_of_photos_are_jpeg_else_png() -> None:
    assert thumb_type("image/jpeg") == "image/jpeg"
    assert thumb_type("image/gif") == "image/png"
