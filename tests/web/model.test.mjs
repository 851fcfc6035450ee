import assert from "node:assert/strict";
import { test } from "node:test";

import { Chat, Room, applyToMessage, dmLabel, normalizeMessage, validMessage } from "../../src/parley/web/model.mjs";

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

test("an authoritative room list drops the rooms it lacks, never general; hello's does not", () => {
  const chat = new Chat("ann");
  chat.mergeRooms([{ room: "a" }, { room: "b" }], false);
  assert.deepEqual(chat.mergeRooms([{ room: "b", last_seq: 2 }], false), []);
  assert.deepEqual([...chat.rooms.keys()].sort(), ["a", "b", "general"]);
  assert.deepEqual(chat.mergeRooms([{ room: "b" }], true), ["a"]);
  assert.deepEqual([...chat.rooms.keys()].sort(), ["b", "general"]);
  assert.equal(chat.rooms.get("b").lastSeq, 2, "last_seq kept: a list never lowers it");
});

test("rooms sort general first, then public, then private, by name", () => {
  const chat = new Chat("ann");
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

// ------------------------------------------------------------ v2: the event log
const ev = (type, seq, extra = {}) => ({ type, room: "general", seq, username: "bob", ts: `t${seq}`, ...extra });
const state = (room) => JSON.parse(JSON.stringify(room.sortedMessages()));

test("messages keep reply_to, edited, deleted, reactions and mentions; a tombstone has no text", () => {
  const m = normalizeMessage(
    msg(4, { reply_to: 2, edited: "t9", reactions: { "👍": ["bob", "ann"] }, mentions: ["ann"] }),
  );
  assert.deepEqual(
    [m.reply_to, m.edited, m.deleted, m.reactions, m.mentions],
    [2, "t9", false, { "👍": ["bob", "ann"] }, ["ann"]],
  );
  const old = normalizeMessage(msg(5)); // a v1 server: the fields are missing
  assert.deepEqual([old.reply_to, old.edited, old.deleted, old.reactions, old.mentions], [null, null, false, {}, []]);
  assert.equal(normalizeMessage(msg(6, { deleted: true, text: "ghost" })).text, "");
});

test("attachments: kept as the page uses them; a tombstone and a deletion carry none", () => {
  const photo = { id: "f1", name: "cat.png", type: "image/png", size: 9, width: 4, height: 3 };
  const m = normalizeMessage(msg(4, { text: "", attachments: [photo, { id: 7 }] }));
  assert.deepEqual(m.attachments, [photo]);
  assert.deepEqual(normalizeMessage(msg(5)).attachments, [], "a server without files");
  assert.deepEqual(normalizeMessage(msg(6, { deleted: true, attachments: [photo] })).attachments, []);
  assert.equal(applyToMessage(m, ev("delete", 7, { target: 4 })), m);
  assert.deepEqual(m.attachments, []);
});

test("history, then a replay of the events it already reflects: the same state", () => {
  const events = [
    ev("edit", 3, { target: 1, text: "first fix" }),
    ev("reaction", 4, { target: 1, emoji: "👍", on: true }),
    ev("reaction", 5, { target: 2, emoji: "🎉", on: true, username: "ann" }),
    ev("edit", 6, { target: 1, text: "second fix" }),
    ev("delete", 7, { target: 2 }),
    ev("reaction", 8, { target: 1, emoji: "👍", on: true, username: "ann" }),
    ev("reaction", 9, { target: 1, emoji: "👍", on: false }),
    ev("topic", 10, { topic: "ship it" }),
  ];
  // Live from the start: messages 1 and 2, then every event.
  const live = new Room("general");
  live.store(msg(1));
  live.store(msg(2, { username: "ann" }));
  for (const e of events) live.applyEvent(e);
  // History after all of it, then the same events replayed by a join with `since`.
  const late = new Room("general");
  late.store(msg(1, { text: "second fix", edited: "t6", reactions: { "👍": ["ann"] } }));
  late.store(msg(2, { username: "ann", deleted: true, text: "" }));
  for (const e of events) late.applyEvent(e);
  assert.deepEqual(state(late), state(live));
  assert.equal(late.topic, "ship it");
  assert.deepEqual(live.messages.get(1).reactions, { "👍": ["ann"] });
  assert.equal(live.messages.get(1).edited, "t6");
  assert.equal(live.messages.get(2).deleted, true);
});

test("the same event twice is applied once; a reaction on twice is counted once", () => {
  const room = new Room("general");
  room.store(msg(1));
  room.applyEvent(ev("reaction", 2, { target: 1, emoji: "👍", on: true }));
  room.applyEvent(ev("reaction", 2, { target: 1, emoji: "👍", on: true }));
  room.applyEvent(ev("reaction", 3, { target: 1, emoji: "👍", on: true })); // a second "on" by bob
  assert.deepEqual(room.messages.get(1).reactions, { "👍": ["bob"] });
  const m = room.messages.get(1);
  assert.equal(applyToMessage(m, ev("reaction", 4, { target: 1, emoji: "👍", on: false, username: "zed" })), null);
  room.applyEvent(ev("reaction", 5, { target: 1, emoji: "👍", on: false }));
  assert.deepEqual(m.reactions, {}, "the last one off: the emoji goes");
});

test("an edit after a delete is ignored: a tombstone stays one", () => {
  const room = new Room("general");
  room.store(msg(1));
  room.applyEvent(ev("delete", 2, { target: 1 }));
  assert.equal(room.applyEvent(ev("edit", 3, { target: 1, text: "back" })), null);
  assert.equal(room.applyEvent(ev("reaction", 4, { target: 1, emoji: "x", on: true })), null);
  assert.deepEqual([room.messages.get(1).text, room.messages.get(1).deleted], ["", true]);
  assert.equal(room.applyEvent(ev("edit", 5, { target: 99, text: "?" })), null, "an unknown target");
  assert.equal(room.lastSeq, 5, "every event counts in last_seq");
});

test("the resume point moves over other events too", () => {
  const room = new Room("general");
  room.seen = 1;
  room.store(msg(2));
  room.applyEvent(ev("reaction", 3, { target: 2, emoji: "👍", on: true }));
  room.applyEvent(ev("edit", 5, { target: 2, text: "x" }));
  assert.equal(room.advanceSeen(), true, "4 is missing");
  assert.equal(room.seen, 3);
  room.store(msg(4));
  assert.equal(room.advanceSeen(), false);
  assert.equal(room.seen, 5);
  assert.equal(room.events.size, 0);
});

test("the last own message, for the Up arrow: deleted ones are skipped", () => {
  const room = new Room("general");
  room.store(msg(1, { username: "ann" }));
  room.store(msg(2, { username: "ann" }));
  room.store(msg(3, { username: "bob" }));
  room.applyEvent(ev("delete", 4, { target: 2 }));
  assert.equal(room.lastOwn("ann").seq, 1);
  assert.equal(room.lastOwn("zed"), null);
});

// ------------------------------------------------------ read markers, counts
const bobs = (seq, extra = {}) => msg(seq, { username: "bob", ...extra });

test("rooms take kind, topic, members and the server's marker and counts", () => {
  const chat = new Chat("ann");
  chat.mergeRooms(
    [
      { room: "general", kind: "room", topic: "all hands", last_seq: 40, last_read: 30, unread: 4, mentions: 1 },
      { room: "dm~00aa11bb22cc33dd", kind: "dm", private: true, members: ["ann", "bob"], last_seq: 2, last_read: 0, unread: 2, mentions: 0 },
    ],
    true,
  );
  const general = chat.rooms.get("general");
  const dm = chat.rooms.get("dm~00aa11bb22cc33dd");
  assert.deepEqual([general.topic, general.lastRead, general.unread, general.mentions], ["all hands", 30, 4, 1]);
  assert.equal(dm.isDm, true);
  assert.equal(chat.label(dm), "bob");
  assert.deepEqual(chat.sortedRooms().map((r) => r.name), ["general"]);
  assert.deepEqual(chat.sortedDms().map((r) => r.name), ["dm~00aa11bb22cc33dd"]);
  assert.equal(chat.totalUnread(), 6);
});

test("a DM is named by its other members; alone, by your own name", () => {
  assert.equal(dmLabel(["ann", "Bob", "cy"], "ANN"), "Bob, cy");
  assert.equal(dmLabel(["ann"], "ann"), "ann");
});

test("live messages bump the counts once: not ours, not already counted by the server", () => {
  const chat = new Chat("ann");
  const room = chat.describe({ room: "general", last_seq: 10, last_read: 8, unread: 2, mentions: 0 });
  room.countMessage(normalizeMessage(bobs(10)), "ann"); // a replay the server had counted
  assert.equal(room.unread, 2);
  room.store(bobs(11, { mentions: ["Ann"] }));
  room.countMessage(room.messages.get(11), "ann");
  room.countMessage(room.messages.get(11), "ann"); // the same one again
  room.store(msg(12, { username: "ann" }));
  room.countMessage(room.messages.get(12), "ann");
  assert.deepEqual([room.unread, room.mentions], [3, 1]);
  // The mention is deleted: it no longer counts.
  room.uncountMessage({ ...room.messages.get(11) }, "ann");
  assert.deepEqual([room.unread, room.mentions], [2, 0]);
});

test("a room list that lags behind live messages keeps counting them", () => {
  const chat = new Chat("ann");
  const room = chat.describe({ room: "general", last_seq: 5, last_read: 5, unread: 0, mentions: 0 });
  room.store(bobs(6));
  room.countMessage(room.messages.get(6), "ann");
  chat.describe({ room: "general", last_seq: 5, last_read: 5, unread: 0, mentions: 0 }); // answered before 6
  assert.equal(room.unread, 1);
});

test("reading: the marker moves to the last message, counts reset, the seq is told once", () => {
  const chat = new Chat("ann");
  const room = chat.describe({ room: "general", last_seq: 9, last_read: 3, unread: 4, mentions: 2 });
  room.store(bobs(9));
  assert.equal(chat.markRead(room), 9);
  assert.deepEqual([room.lastRead, room.unread, room.mentions], [9, 0, 0]);
  assert.equal(chat.markRead(room), null, "nothing new");
  room.applyEvent({ type: "reaction", room: "general", seq: 10, target: 9, emoji: "x", on: true, username: "bob" });
  assert.equal(chat.markRead(room), null, "a reaction alone: no read frame");
  // The socket closed before the read frame went out: the next hello says 3 again.
  chat.describe({ room: "general", last_seq: 9, last_read: 3, unread: 4, mentions: 2 });
  assert.equal(chat.markRead(room), 9, "told again");
});

test("a read marker from another socket: counts from what is held, else unknown", () => {
  const room = new Chat("ann").describe({ room: "general", last_seq: 4, last_read: 0, unread: 4, mentions: 0 });
  room.seen = 4;
  for (const seq of [1, 2, 3, 4]) room.store(bobs(seq));
  assert.equal(room.readUpTo(2, "ann"), true);
  assert.equal(room.unread, 2);
  assert.equal(room.readUpTo(1, "ann"), true, "never back");
  assert.equal(room.lastRead, 2);
  assert.equal(room.readUpTo(9, "ann"), true);
  assert.equal(room.unread, 0);
  const far = new Chat("ann").describe({ room: "x", last_seq: 90, last_read: 0, unread: 90, mentions: 0 });
  far.seen = 90;
  far.store(msg(80, { room: "x" }));
  assert.equal(far.readUpTo(10, "ann"), false, "11..79 are not held");
});

test("mention completion: members and who is online; in a public room who was seen too", () => {
  const chat = new Chat("ann");
  const room = chat.ensureRoom("general");
  room.store(msg(1, { username: "zed" }));
  room.online.add("Bob");
  assert.deepEqual(chat.peopleIn(room), ["Bob", "zed"]);
  const secret = chat.ensureRoom("secret");
  secret.private = true;
  secret.members = ["ann", "cy"];
  secret.store(msg(1, { room: "secret", username: "gone" }));
  assert.deepEqual(chat.peopleIn(secret), ["ann", "cy"]);
});

test("removing a room: never general", () => {
  const chat = new Chat("ann");
  chat.ensureRoom("general");
  chat.ensureRoom("x");
  assert.equal(chat.removeRoom("x"), true);
  assert.equal(chat.removeRoom("general"), false);
  assert.deepEqual([...chat.rooms.keys()], ["general"]);
});
