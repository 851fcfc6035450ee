"""The data directory's lock: who is using it, so that a restore never replaces a database
under a running server.

Every `parley serve` holds a shared lock (flock) on DATA/parley.lock for its whole life,
with or without --db; `parley restore` takes it exclusively, without waiting, and holds it
while it swaps the files in. The kernel drops a lock when its process ends, however it
ends (SIGKILL included), so no stale lock is ever left to clean up; the file itself stays.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["LOCK_NAME", "DataDirBusy", "exclusive", "shared"]

LOCK_NAME: Final = "parley.lock"


class DataDirBusy(Exception):
    """Another process holds the data directory's lock in a way that excludes ours."""


@contextlib.contextmanager
def _locked(data_dir: str | os.PathLike[str], mode: int, busy: str) -> Iterator[Path]:
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(busy.format(directory=directory)) from None
        yield path
    finally:
        os.close(fd)  # closing the file drops the lock


def shared(data_dir: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """Held by a running server (several servers may share a directory)."""
    return _locked(data_dir, fcntl.LOCK_SH, "a restore into {directory} is under way")


def exclusive(data_dir: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """Held by a restore: only when no server uses the directory."""
    return _locked(
        data_dir, fcntl.LOCK_EX, "a server is running on {directory}: stop it before a restore"
    )
