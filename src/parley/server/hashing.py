"""Password hashing on a few threads, shared fairly between client addresses.

argon2 takes a core and tens of MiB per hash, so only `workers` run at once. Waiting jobs
queue per client address and are served in turn (`parley.core.FairQueue`): a flood of
sign-ins from one address delays another address's by at most one hash per busy address,
and one address may have at most `max_waiting` queued (the rest are refused at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from parley.core import FairQueue

__all__ = ["HashPool", "HashQueueFull"]

R = TypeVar("R")
RETRY_AFTER: Final = 1.0  # a few hashes' time: by then the address's queue has moved


class HashQueueFull(Exception):
    """This address already has its fill of hashing jobs waiting."""

    retry_after = RETRY_AFTER


@dataclass(slots=True)
class _Job(Generic[R]):
    fn: Callable[..., R]
    args: tuple[Any, ...]
    future: asyncio.Future[R]


class HashPool:
    def __init__(self, workers: int = 2, max_waiting: int = 64) -> None:
        self.workers = max(1, workers)
        self._queue: FairQueue[_Job[Any]] = FairQueue(max_waiting)
        self._busy = 0  # workers serving the queue; counted down in the step that finds it empty
        self._tasks: set[asyncio.Task[None]] = set()  # strong references

    async def run(self, key: str, fn: Callable[..., R], *args: Any) -> R:
        """`fn(*args)` on a hashing thread, in `key`'s turn; raises HashQueueFull."""
        job: _Job[R] = _Job(fn, args, asyncio.get_running_loop().create_future())
        if not self._queue.push(key, job):
            raise HashQueueFull
        if self._busy < self.workers:
            self._busy += 1
            task = asyncio.create_task(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await job.future

    async def _work(self) -> None:
        """Serve jobs until none wait; a job whose caller gave up costs nothing.

        The empty check and the count-down share one step (no await between), so a job
        queued later always finds a worker or starts one."""
        while (job := self._queue.pop()) is not None:
            if job.future.done():
                continue
            try:
                result = await asyncio.to_thread(job.fn, *job.args)
            except Exception as exc:  # the caller's error (e.g. a bad hash), not the pool's
                if not job.future.done():
                    job.future.set_exception(exc)
            else:
                if not job.future.done():
                    job.future.set_result(result)
        self._busy -= 1
