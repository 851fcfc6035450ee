"""server/files.py: what a crash mid-upload leaves in the staging folder goes after a day."""

from __future__ import annotations

import os
import time
from pathlib import Path

from parley.server.files import UNUSED_FOR, Uploads
from parley.store.sqlite import SQLiteStore


async def test_sweep_removes_only_old_leftovers(tmp_path: Path) -> None:
    uploads = Uploads(SQLiteStore(tmp_path / "parley.db"), tmp_path, 1024, 0, 10.0)
    assert await uploads.sweep(time.time()) == 0  # no staging folder yet
    uploads.staging.mkdir()
    old, new = uploads.staging / "old.part", uploads.staging / "new.part"
    old.write_bytes(b"left by a crash")
    new.write_bytes(b"an upload in progress")
    now = time.time()
    os.utime(old, (now - UNUSED_FOR - 60, now - UNUSED_FOR - 60))
    assert await uploads.sweep(now) == 1
    assert sorted(p.name for p in uploads.staging.iterdir()) == ["new.part"]
