import assert from "node:assert/strict";
import { test } from "node:test";

import { Chat, ReadMarks, Room, validMessage } from "../../src/parley/web/model.mjs";

const msg = (seq, extra = {}) => ({ room: "general", seq, username: "ann", text: `m${seq}`, ts: "", ...extra });
const seqs = (room) => room.sortedMessages().map((m) => m.seq);

test("history and live messages merge into one list in seq order, one copy of each", () => {
  const room = new Room("general");
  for (const seq of [7, 8]) room.store(msg(seq)); // live, before the history answer
  const fresh = [3, 4, 5, 6, 7, 8].map((seq) => room.store(msg(seq))); // the latest page
  assert.deepEqual(fresh, [true, true, true, true, false, false]);
  room.store(msg(9));
  for (const seq of [1, 2, 3]) room.store(msg(seq)); // an older page overlapping by one
  assert.deepEqual(seqs(room), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(room.lastSeq, 9);
});

test("a second copy of a seq keeps the first one", () => {
  const room = new Room("general");
  room.store(msg(1, { text: "first" }));
  assert.equal(room.store(msg(1, { text: "again" })), false);
  assert.equal(room.messages.get(1).text, "first");
});

test("the resume point moves only over contiguous seqs; a hole is reported once", () => {
  const room = new Room("general");
  room.seen = 2;
  room.store(msg(3));
  assert.equal(room.advanceSeen(), false);
  assert.equal(room.seen, 3);
  room.store(msg(6));
  assert.equal(room.advanceSeen(), true, "4 and 5 are missing");
  assert.equal(room.seen, 3);
  room.historyQueue.push("after"); // the request that fills it
  assert.equal(room.advanceSeen(), false, "already asked for");
  room.store(msg(4));
  room.store(msg(5));
  room.advanceSeen();
  assert.equal(room.seen, 6);
});

test("a room never joined has no resume point to move", () => {
  const room = new Room("general");
  room.store(msg(5));
  assert.equal(room.advanceSeen(), false);
  assert.equal(room.seen, null);
});

test("forgetting a socket asks for an unanswered first page again", () => {
  const room = new Room("general");
  Object.assign(room, { joined: true, opened: true, historyQueue: ["latest"], loadingOlder: true });
  room.online.add("bob");
  room.forgetSocket();
  assert.deepEqual(
    [room.joined, room.opened, room.historyQueue, room.loadingOlder, room.online.size],
    [false, false, [], false, 0],
  );
});

test("messages without a room, a positive integer seq, a username or a text are refused", () => {
  assert.ok(validMessage(msg(1)));
  for (const bad of [null, msg(0), msg(1.5), msg("1"), msg(1, { room: 1 }), msg(1, { text: null })]) {
    assert.equal(validMessage(bad), false, JSON.stringify(bad));
  }
  assert.equal(validMessage({ room: "general", seq: 1, text: "x" }), false);
});

test("read marks only move forward", () => {
  let changes = 0;
  const marks = new ReadMarks({ general: 5 }, () => changes++);
  assert.equal(marks.advance("general", 3), false);
  assert.equal(marks.advance("general", 5), false);
  assert.equal(marks.get("general"), 5);
  assert.equal(marks.advance("general", 8), true);
  assert.equal(marks.get("general"), 8);
  assert.equal(changes, 1);
  assert.deepEqual(JSON.parse(JSON.stringify(marks)), { general: 8 });
});

test("markRead moves the mark to the room's last seq, never back, and only for known rooms", () => {
  const chat = new Chat("ann", new ReadMarks({ general: 10 }));
  const room = chat.ensureRoom("general");
  room.lastSeq = 12;
  assert.equal(chat.markRead(room), false, "the server has not told us about it yet");
  room.known = true;
  assert.equal(chat.markRead(room), true);
  assert.equal(chat.readSeq(room), 12);
  room.lastSeq = 4; // (a stale number must not undo what was read)
  assert.equal(chat.markRead(room), false);
  assert.equal(chat.readSeq(room), 12);
});

test("unread = last seq − read mark; a room first heard of after the first visit is all unread", () => {
  const chat = new Chat("ann", new ReadMarks({ general: 3 }));
  const general = chat.ensureRoom("general");
  general.lastSeq = 10;
  assert.equal(chat.unread(general), 7);
  const fresh = chat.ensureRoom("design");
  fresh.lastSeq = 4;
  assert.equal(chat.unread(fresh), 4);
});

test("first visit: public backlog counts as read, private rooms' as unread", () => {
  const chat = new Chat("ann", new ReadMarks(null));
  assert.equal(chat.marks.firstVisit, true);
  chat.mergeRooms(
    [
      { room: "general", private: false, last_seq: 40 },
      { room: "secret", private: true, last_seq: 3 },
    ],
    true,
  );
  assert.equal(chat.marks.firstVisit, false);
  assert.equal(chat.unread(chat.rooms.get("general")), 0);
  assert.equal(chat.unread(chat.rooms.get("secret")), 3);
});

test("an authoritative room list drops the rooms it lacks, never general; hello's does not", () => {
  const chat = new Chat("ann", new ReadMarks({}));
  chat.mergeRooms([{ room: "a" }, { room: "b" }], false);
  assert.deepEqual(chat.mergeRooms([{ room: "b", last_seq: 2 }], false), []);
  assert.deepEqual([...chat.rooms.keys()].sort(), ["a", "b", "general"]);
  assert.deepEqual(chat.mergeRooms([{ room: "b" }], true), ["a"]);
  assert.deepEqual([...chat.rooms.keys()].sort(), ["b", "general"]);
  assert.equal(chat.rooms.get("b").lastSeq, 2, "last_seq kept: a list never lowers it");
});

test("rooms sort general first, then public, then private, by name", () => {
  const chat = new Chat("ann", new ReadMarks({}));
  chat.mergeRooms(
    [
      { room: "zed", private: false },
      { room: "alpha", private: true },
      { room: "beta", private: false },
    ],
    false,
  );
  assert.deepEqual(
    chat.sortedRooms().map((r) => r.name),
    ["general", "beta", "zed", "alpha"],
  );
});
