"""The generator's own client frames (the pipelined ingest writes them itself)."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from parley_bench.client import masked_text_frame


def parse_all(data: bytes, count: int) -> list[Frame]:
    """Parse `count` client frames with the websockets library's own (sans-I/O) parser."""
    reader = StreamReader()
    reader.feed_data(data)
    frames = []
    for _ in range(count):
        parser = Frame.parse(reader.read_exact, mask=True)
        with pytest.raises(StopIteration) as done:
            next(parser)
        frames.append(done.value.value)
    return frames


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_frames_written_back_to_back_parse_as_masked_text_frames(size: int) -> None:
    first, second = b"a" * size, "é".encode() * (size // 2)
    frames = parse_all(masked_text_frame(first) + masked_text_frame(second), 2)
    assert [(f.opcode, f.fin, f.data) for f in frames] == [
        (Opcode.TEXT, True, first),
        (Opcode.TEXT, True, second),
    ]
