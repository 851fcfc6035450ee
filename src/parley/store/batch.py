"""Group commit's shared part: what a batch of sends stores and what each send gets back.

No I/O: both stores plan a batch here, then run the plan with their own SQL (one seq bump
per room, one multi-row INSERT).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final

import msgspec

from parley.protocol import File, Message, MessageEvent, Send, as_event
from parley.store.base import Appended, Stored, StoreUnavailable, UnknownRoom

__all__ = [
    "ROW_COLUMNS",
    "Answer",
    "Answered",
    "Answering",
    "AppendPlan",
    "AppendResult",
    "BatchAnswer",
    "Outcome",
    "PendingAppend",
    "QueuedAppends",
    "QueuedSend",
    "Settles",
    "Sink",
    "give",
    "settle",
    "settle_outcomes",
    "settle_values",
]

log = logging.getLogger("parley.store")

# The columns of a message row, in the order the stores' INSERTs give them.
ROW_COLUMNS = "room, seq, username, text, ts, client_id, reply_to, mentions, n, attachments"

AppendResult = Appended  # (message, created) or why it failed
ClientKey = tuple[str, str]  # (username, client_id): what makes a resend a resend
_AUTHOR: Final = attrgetter("username")
_FUTURE: Final = attrgetter("future")


class Answering:
    """What settling a batch resolves besides a future: an object with a future's
    `cancelled`, `set_result` and `set_exception`, all of which come to its `call`. (A
    plain mixin, not an ABC: `BatchAnswer` is a msgspec Struct, whose metaclass is
    msgspec's.)"""

    __slots__ = ()

    # Answer with the result (what settling a batch calls: one call, not three); each kind
    # defines it as a method of its own.
    call: Callable[[AppendResult], None]

    def cancelled(self) -> bool:
        return False

    def set_result(self, result: Stored) -> None:
        self.call(result)

    def set_exception(self, exc: BaseException) -> None:
        self.call(exc)


class Answer(Answering):
    """A send's callback standing in for its future (`Store.append_then`): settling the
    batch calls it right there, where a future would schedule a loop callback per send
    (measured: 2.7 µs a send through a future and its callback, 0.3 µs called directly)."""

    __slots__ = ("_answer",)

    def __init__(self, answer: Callable[[AppendResult], None]) -> None:
        self._answer = answer

    def call(self, result: AppendResult) -> None:
        try:
            self._answer(result)
        except Exception:  # as the loop would for a future's callback: the batch goes on
            log.exception("answering a send failed")


# What a `BatchAnswer`'s sink gets: each of its sends' token with the send's result.
Answered = list[tuple[Any, AppendResult]]
Sink = Callable[[Answered], None]
# A send of `Store.append_all_then`: (the key of its room, its frame). The frame is also its
# token: what the sink gets back with its result (no tuple is built per send for either).
QueuedSend = tuple[str, Send]


class BatchAnswer(msgspec.Struct, Answering):
    """A send answered together with the others of its batch: settling hands `sink` the
    (`token`, result) of every send of the batch that has that sink, in their order, in one
    call, where an `Answer` costs a call chain per send. A send answered alone (refused at
    once, or its batch failed) is still a list, of one. (A Struct, as `PendingAppend`: one
    is made per send, and a Python `__init__` cost more than the rest of its life.)"""

    sink: Sink
    token: Any

    def call(self, result: AppendResult) -> None:
        give(self.sink, [(self.token, result)])


Settles = asyncio.Future[Any] | Answering  # what a batch's settling resolves
Outcome = tuple[Settles, Any, BaseException | None]  # (future, result, error) of a job


def give(sink: Sink, answers: Answered) -> None:
    """Hand `sink` its answers (a failing sink does not keep the others from theirs)."""
    try:
        sink(answers)
    except Exception:  # as the loop would for a future's callback: the batch goes on
        log.exception("answering sends failed")


def settle_outcomes(outcomes: Iterable[Outcome]) -> None:
    """`settle_values` for (future, result, error) triples (a batch's jobs)."""
    triples = list(outcomes)
    settle_values([f for f, _, _ in triples], [r if e is None else e for _, r, e in triples])


def settle_values(futures: Iterable[Settles], values: Iterable[Any]) -> None:
    """Settle a batch's answers in their order, each future with its value: its result, or
    the exception it failed with (no job returns an exception as its result). A future
    may have been cancelled by its caller; an `Answer` is called; a run of consecutive
    `BatchAnswer`s of one sink goes to that sink in one call. Strictly in order, because one
    socket's sends may have two sinks (a read of several sends has its own, a lone send
    the one all sockets share): answered by sink, its acks would leave out of the order it
    sent them in. (Per send: `zip` hands out one reused pair, nothing is built.)"""
    run_sink: Sink | None = None
    run: Answered = []
    for future, value in zip(futures, values, strict=True):
        if type(future) is BatchAnswer:
            if future.sink != run_sink:  # (equal, not the same: a bound method is made anew)
                if run_sink is not None:
                    give(run_sink, run)
                run_sink, run = future.sink, []
            run.append((future.token, value))
            continue
        if run_sink is not None:
            give(run_sink, run)
            run_sink, run = None, []
        if isinstance(future, Answering):
            future.call(value)
        elif future.cancelled():
            continue
        elif isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)
    if run_sink is not None:
        give(run_sink, run)


class PendingAppend(msgspec.Struct):
    """A send waiting for its batch; `future` gets its (message, created). A Struct: its
    `__init__` is msgspec's, in C (a dataclass's, in Python, was 3% of a send's cost)."""

    room: str
    username: str
    text: str
    client_id: str | None
    future: Settles
    reply_to: int | None = None
    attachments: tuple[str, ...] = ()  # file ids (distinct)
    mentions: list[str] = msgspec.field(default_factory=list)  # set by the store
    files: list[File] = msgspec.field(default_factory=list)  # the attachments found
    refused: BaseException | None = None  # set by the store: an attachment not found


class QueuedAppends(abc.ABC):
    """`Store.append_soon` and `Store.append_then` for a store that batches its sends:
    each becomes a PendingAppend, and the store says only how it queues one."""

    __slots__ = ()

    def append_soon(
        self,
        room: str,
        username: str,
        text: str,
        client_id: str | None,
        reply_to: int | None = None,
        attachments: tuple[str, ...] = (),
    ) -> asyncio.Future[Stored]:
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue(PendingAppend(room, username, text, client_id, future, reply_to, attachments))
        return future

    def append_then(
        self,
        room: str,
        username: str,
        text: str,
        client_id: str | None,
        reply_to: int | None,
        attachments: tuple[str, ...],
        answer: Answering,
    ) -> None:
        self._queue(PendingAppend(room, username, text, client_id, answer, reply_to, attachments))

    def append_all_then(self, username: str, sends: Sequence[QueuedSend], sink: Sink) -> None:
        pendings = [
            PendingAppend(
                room,
                username,
                frame.text,
                frame.client_id,
                BatchAnswer(sink, frame),
                None,
                tuple(dict.fromkeys(frame.attachments)) if frame.attachments else (),  # once
            )
            for room, frame in sends
        ]
        self._queue_all(pendings)

    @abc.abstractmethod
    def _queue(self, pending: PendingAppend) -> None:
        """Take `pending` into the next batch (or settle it at once, failed, when closed)."""

    def _queue_all(self, pendings: list[PendingAppend]) -> None:
        """`_queue` for each of `pendings`, in order (a store may take them in one step)."""
        for pending in pendings:
            self._queue(pending)


class AppendPlan:
    """Which of a batch's sends to store, per room, and what each one gets back.

    A send whose (username, client_id) is in `known` (already stored) gets the stored
    message back, not created; one the store `refused` (an attachment not found) fails; a
    client_id twice in one batch: the first is stored and the later ones get it back. The
    rest are numbered per room, in batch order, after the store has bumped the room's seq
    by their count.
    """

    __slots__ = ("_created", "_own", "_repeats", "_results", "appends", "by_room")

    def __init__(
        self, appends: Sequence[PendingAppend], known: Mapping[ClientKey, Message]
    ) -> None:
        self.appends = appends
        self._results: list[AppendResult | None] = [None] * len(appends)
        self._repeats: list[tuple[int, int]] = []  # (a later send, the first with its key)
        self.by_room: dict[str, list[int]] = {}  # indexes of the sends to store
        self._created: list[MessageEvent] = []  # what `stored` numbered, in its order
        self._own: list[tuple[str, str, int]] = []  # (username, room, messages): `own_counts`
        first: dict[ClientKey, int] = {}
        by_room = self.by_room
        for i, a in enumerate(appends):
            if a.client_id is not None:
                key = (a.username, a.client_id)
                if known and key in known:
                    self._results[i] = (as_event(known[key]), False)
                    continue
                if key in first:
                    self._repeats.append((i, first[key]))
                    continue
                first[key] = i
            if a.refused is not None:
                self._results[i] = a.refused
                continue
            if (indexes := by_room.get(a.room)) is None:
                by_room[a.room] = [i]
            else:
                indexes.append(i)

    def to_store(self, room: str) -> list[PendingAppend]:
        return [self.appends[i] for i in self.by_room[room]]

    def stored(self, room: str, last_seq: int, ts: str) -> list[MessageEvent]:
        """The room's seq was bumped to `last_seq` for this batch: number its sends and
        return them as stored, in seq order."""
        indexes = self.by_room[room]
        seq = last_seq - len(indexes)
        created = self._created
        first = len(created)
        for i in indexes:
            seq += 1
            a = self.appends[i]
            message = MessageEvent(
                room,
                seq,
                a.username,
                a.text,
                ts,
                a.client_id,
                a.reply_to,
                mentions=a.mentions,
                attachments=a.files,
            )
            self._results[i] = (message, True)
            created.append(message)
        mine = created[first:]
        # Counted in C, by name alone (a string's hash is computed once; a pair's is not).
        counts = Counter(map(_AUTHOR, mine))
        self._own += [(user, room, own) for user, own in counts.items()]
        return mine

    def own_counts(self) -> list[tuple[str, str, int]]:
        """(username, room, how many messages of theirs this batch stores): each adds to
        the user's count of own messages after their read marker."""
        return self._own

    def mention_rows(self) -> list[tuple[str, str, int]]:
        """(username, room, seq) of each stored message's mentions, but of its author."""
        return [
            (user, msg.room, msg.seq)
            for msg in self._created
            if msg.mentions
            for user in msg.mentions
            if user != msg.username
        ]

    def attachment_rows(self) -> list[tuple[str, str, int]]:
        """(file id, room, seq) of each stored message's attachments."""
        return [
            (f.id, msg.room, msg.seq)
            for msg in self._created
            if msg.attachments
            for f in msg.attachments
        ]

    def unknown(self, room: str) -> None:
        for i in self.by_room[room]:
            self._results[i] = UnknownRoom(room)

    def senders(self, room: str) -> list[str]:
        return sorted({self.appends[i].username for i in self.by_room[room]})

    def members_only(self, room: str, members: Collection[str]) -> int:
        """A private room: its sends by users who are no longer members (removed since
        their socket learnt it may use the room) fail as UnknownRoom (not_found); how many
        are left to store."""
        kept = []
        for i in self.by_room[room]:
            if self.appends[i].username in members:
                kept.append(i)
            else:
                self._results[i] = UnknownRoom(room)
        if kept:
            self.by_room[room] = kept
        else:
            del self.by_room[room]  # nothing left to store there
        return len(kept)

    def results(self) -> list[AppendResult]:
        for i, j in self._repeats:
            earlier = self._results[j]
            self._results[i] = (earlier[0], False) if isinstance(earlier, tuple) else earlier
        return [r if r is not None else StoreUnavailable("lost in batch") for r in self._results]


def settle(appends: Sequence[PendingAppend], results: Sequence[AppendResult]) -> None:
    """`settle_values` for a batch of sends and their results."""
    settle_values(map(_FUTURE, appends), results)
