import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { FrameHandler, PAGE_SIZE, mentionedIn, parseFrame, request } from "../../src/parley/web/frames.mjs";
import { Chat } from "../../src/parley/web/model.mjs";
import { Outbox } from "../../src/parley/web/outbox.mjs";

const handlers = [];
afterEach(() => {
  for (const h of handlers.splice(0)) h.stop(); // no typing or hold timer outlives its test
});

/** A frame handler on a fake page: an open socket that records what is sent. */
function setup({ me = "ann", current = "general", rooms = ["general"] } = {}) {
  let n = 0;
  const chat = new Chat(me);
  for (const name of rooms) chat.ensureRoom(name);
  chat.current = current;
  const outbox = new Outbox({ newId: () => `c${++n}` });
  const page = { sent: [], dirty: [], announced: [], helloes: [], roles: [], refreshes: 0, roomsChanged: 0, visible: true };
  const host = {
    send: (frame) => {
      page.sent.push(frame);
      return true;
    },
    socketId: () => 1,
    online: () => true,
    markDirty: (part, detail) => page.dirty.push(detail ? [part, detail] : [part]),
    canSeeCurrent: () => page.visible,
    announce: (text) => page.announced.push(text),
    hello: (frame) => page.helloes.push(frame),
    roleChanged: (admin) => page.roles.push(admin),
    roomsChanged: () => page.roomsChanged++,
    refreshRooms: () => page.refreshes++,
    now: () => 0,
  };
  const frames = new FrameHandler(chat, outbox, host);
  handlers.push(frames);
  return { chat, outbox, page, frames };
}

const msg = (seq, extra = {}) => ({ type: "message", room: "general", seq, username: "bob", text: `m${seq}`, ts: "", ...extra });
const seqs = (room) => room.sortedMessages().map((m) => m.seq);
const sentTypes = (page) => page.sent.map((f) => f.type);
/** A sent frame without its request id. */
const bare = ({ id, ...frame }) => frame;
/** The request id of the last frame sent that `pick` picks. */
const idOf = (page, pick) => page.sent.findLast(pick).id;
const lastHistory = (f) => f.type === "history";

/** The room is joined on the socket, resuming after `seen`. */
function join(frames, room = "general", lastSeq = 0) {
  frames.handle({ type: "joined", room, last_seq: lastSeq, online: ["ann"] });
}

test("parseFrame: JSON objects with a string type, else null", () => {
  assert.deepEqual(parseFrame('{"type":"ack","seq":1}'), { type: "ack", seq: 1 });
  for (const bad of ["not json", "null", "[]", '{"type":1}', '"hello"']) assert.equal(parseFrame(bad), null, bad);
});

test("each frame type goes to its handler; an unknown type does nothing", () => {
  const { frames, page } = setup();
  const seen = [];
  for (const name of ["hello", "joined", "message", "ack", "history", "typing", "presence", "error"]) {
    frames[name] = (frame) => seen.push([name, frame.type]);
  }
  for (const type of ["hello", "joined", "message", "ack", "history", "typing", "presence", "error", "future"]) {
    frames.handle({ type });
  }
  assert.deepEqual(seen.map(([name]) => name), ["hello", "joined", "message", "ack", "history", "typing", "presence", "error"]);
  assert.ok(seen.every(([name, type]) => name === type));
  assert.deepEqual(page.sent, []);
});

test("account: the role change goes to the page; a frame without a boolean admin does nothing", () => {
  const { frames, page } = setup();
  for (const frame of [{ admin: true }, { admin: false }, {}, { admin: "yes" }]) frames.handle({ type: "account", ...frame });
  assert.deepEqual(page.roles, [true, false]);
  assert.deepEqual(page.sent, []);
});

test("hello merges its rooms, joins each on the socket and asks for the full room list", () => {
  const { frames, page, chat } = setup();
  chat.rooms.get("general").seen = 12; // resumed after a reconnect
  frames.handle({ type: "hello", username: "ann", rooms: [{ room: "general" }, { room: "design", last_seq: 3 }] });
  assert.equal(page.helloes.length, 1);
  assert.deepEqual(page.sent.map(bare), [request.join("general", 12), { type: "join", room: "design" }]);
  assert.deepEqual(page.sent[0], { type: "join", room: "general", since: 12, id: 1 });
  assert.equal(page.sent[1].id, 2, "each frame has an id of its own");
  assert.equal(page.refreshes, 1);
  assert.equal(page.roomsChanged, 1);
  frames.joinAll();
  assert.equal(page.sent.length, 2, "a join already sent on this socket is not sent again");
});

test("joined: the resume point starts at last_seq; the shown room asks for its latest page", () => {
  const { frames, page, chat } = setup();
  join(frames, "general", 30);
  const room = chat.rooms.get("general");
  assert.equal(room.seen, 30);
  assert.equal(room.joined, true);
  assert.deepEqual(page.sent.map(bare), [{ type: "history", room: "general", limit: PAGE_SIZE }]);
  assert.equal(room.lastRead, 0, "nothing shown yet: nothing read");
  frames.handle({ type: "history", room: "general", messages: [msg(29), msg(30)], id: page.sent[0].id });
  frames.readCurrent(); // the page drew the log (views: logDrawn)
  assert.deepEqual(bare(page.sent.at(-1)), { type: "read", room: "general", seq: 30 });
  assert.equal(room.lastRead, 30, "the shown room, seen to its end: read");
});

test("live messages and the history page merge without duplicates, in seq order", () => {
  const { frames, chat } = setup();
  join(frames, "general", 3);
  frames.handle(msg(4));
  frames.handle(msg(5));
  frames.handle({ type: "history", room: "general", messages: [1, 2, 3, 4].map((s) => msg(s)) });
  frames.handle(msg(5)); // once more, say from a resume
  const room = chat.rooms.get("general");
  assert.deepEqual(seqs(room), [1, 2, 3, 4, 5]);
  assert.equal(room.seen, 5);
  assert.equal(room.historyDone, true, "a short first page holds the beginning");
});

test("a message that jumps past the resume point asks for the hole", () => {
  const { frames, page } = setup({ current: null });
  join(frames, "general", 3);
  frames.handle(msg(6));
  assert.deepEqual(bare(page.sent.at(-1)), { type: "history", room: "general", after: 3, limit: 100 });
  frames.handle(msg(7));
  assert.equal(page.sent.length, 1, "asked once");
  frames.handle({ type: "history", room: "general", messages: [msg(4), msg(5)], id: page.sent[0].id });
  assert.deepEqual(seqs(frames.chat.rooms.get("general")), [4, 5, 6, 7]);
  assert.equal(frames.chat.rooms.get("general").seen, 7);
});

test("history answers are matched to their requests by id", () => {
  const { frames, chat, page } = setup();
  join(frames, "general", 100); // asks for the latest page
  const latest = Array.from({ length: PAGE_SIZE }, (_, i) => msg(51 + i));
  frames.handle({ type: "history", room: "general", messages: latest, id: idOf(page, lastHistory) });
  const room = chat.rooms.get("general");
  assert.equal(room.historyDone, false);
  frames.loadOlder();
  assert.equal(room.loadingOlder, true);
  assert.deepEqual(bare(page.sent.at(-1)), { type: "history", room: "general", before: 51, limit: PAGE_SIZE });
  frames.handle({ type: "history", room: "general", messages: [msg(50)], id: idOf(page, lastHistory) });
  assert.equal(room.loadingOlder, false);
  assert.equal(room.historyDone, true, "a short older page is the last one");
  assert.deepEqual(seqs(room).slice(0, 2), [50, 51]);
});

test("sending: the outbox goes out on join, one at a time, and leaves on its own message", () => {
  const { frames, page, outbox } = setup({ me: "ann" });
  const a = outbox.add("general", "one");
  outbox.add("general", "two");
  join(frames, "general", 0);
  const sends = page.sent.filter((f) => f.type === "send").map(bare);
  assert.deepEqual(sends, [{ type: "send", room: "general", text: "one", client_id: "c1" }]);
  frames.handle({ type: "ack", client_id: "c1", seq: 1 });
  assert.equal(a.status, "acked");
  assert.equal(outbox.items.size, 2, "acked, its message not here yet");
  assert.deepEqual(page.sent.filter((f) => f.type === "send").at(-1).client_id, "c2", "the ack lets the next go");
  frames.handle(msg(1, { username: "ann", text: "one", client_id: "c1" }));
  assert.equal(outbox.get("c1"), undefined);
});

test("an ack for a message already held takes it out of the outbox at once", () => {
  const { frames, outbox } = setup({ me: "ann" });
  outbox.add("general", "one");
  join(frames, "general", 0);
  frames.handle(msg(1, { username: "ann", text: "one", client_id: "c2-other" }));
  frames.handle({ type: "ack", client_id: "c1", seq: 1 });
  assert.equal(outbox.items.size, 0);
});

test("a socket that closes mid-send: after the next join the message goes again, same client_id", () => {
  const { frames, page, outbox, chat } = setup({ me: "ann" });
  outbox.add("general", "one");
  join(frames, "general", 5);
  frames.socketClosed();
  const room = chat.rooms.get("general");
  assert.equal(room.joined, false);
  assert.equal(outbox.get("c1").status, "queued");
  page.sent.length = 0;
  frames.joinAll();
  assert.deepEqual(page.sent.map(bare), [{ type: "join", room: "general", since: 5 }]);
  join(frames, "general", 6);
  assert.deepEqual(bare(page.sent.find((f) => f.type === "send")), {
    type: "send",
    room: "general",
    text: "one",
    client_id: "c1",
  });
  // The server had stored it: the resume brings it once, the outbox empties.
  frames.handle(msg(6, { username: "ann", text: "one", client_id: "c1" }));
  frames.handle({ type: "ack", client_id: "c1", seq: 6 });
  assert.equal(outbox.items.size, 0);
  assert.deepEqual(seqs(room), [6]);
});

test("rate_limited holds the room's outbox; too_large fails the message with a reason", () => {
  const { frames, outbox, page } = setup({ me: "ann" });
  outbox.add("general", "fast");
  join(frames, "general", 0);
  frames.handle({ type: "error", code: "rate_limited", ref: "c1", retry_after: 2 });
  assert.equal(outbox.get("c1").status, "queued");
  assert.equal(outbox.isHeld("general"), true);
  const sendsBefore = sentTypes(page).filter((t) => t === "send").length;
  frames.flushOutbox("general");
  assert.equal(sentTypes(page).filter((t) => t === "send").length, sendsBefore, "held: nothing goes");
  outbox.release("general");
  frames.flushOutbox("general");
  frames.handle({ type: "error", code: "too_large", ref: "c1" });
  assert.equal(outbox.get("c1").status, "failed");
  assert.match(outbox.get("c1").error, /4000 characters/);
});

test("an error about a room (not a message) asks for the room list again", () => {
  const { frames, page } = setup();
  frames.handle({ type: "error", code: "forbidden" });
  frames.handle({ type: "error", code: "bad_frame" });
  assert.equal(page.refreshes, 1);
});

test("live messages from others are announced; own ones and history are not", () => {
  const { frames, page } = setup({ me: "ann", rooms: ["general", "design"] });
  join(frames, "general", 0);
  join(frames, "design", 0);
  frames.handle(msg(1, { text: "hi there" }));
  frames.handle(msg(1, { room: "design" }));
  frames.handle(msg(2, { username: "ann" }));
  frames.handle({ type: "history", room: "general", messages: [msg(3)] });
  assert.deepEqual(page.announced, ["bob: hi there", "New message in design from bob"]);
});

test("unread: messages in a room not shown count; in the shown, visible room they are read", () => {
  const { frames, chat, page } = setup({ rooms: ["general", "design"] });
  join(frames, "general", 0);
  frames.handle({ type: "history", room: "general", messages: [], id: idOf(page, lastHistory) });
  join(frames, "design", 0);
  frames.handle(msg(1));
  frames.handle(msg(1, { room: "design" }));
  frames.handle(msg(2, { room: "design" }));
  assert.equal(chat.rooms.get("general").unread, 0);
  assert.equal(chat.rooms.get("design").unread, 2);
  page.visible = false;
  frames.handle(msg(2));
  assert.equal(chat.rooms.get("general").unread, 1, "a hidden tab reads nothing");
});

test("presence and typing change the room and mark its parts for drawing", () => {
  const { frames, chat, page } = setup();
  join(frames, "general", 0);
  page.dirty.length = 0;
  frames.handle({ type: "presence", room: "general", username: "bob", online: true });
  frames.handle({ type: "typing", room: "general", username: "bob" });
  frames.handle({ type: "typing", room: "general", username: "ann" }); // our own: ignored
  const room = chat.rooms.get("general");
  assert.deepEqual([...room.online].sort(), ["ann", "bob"]);
  assert.deepEqual([...room.typing.keys()], ["bob"]);
  assert.deepEqual(page.dirty, [["members"], ["header"], ["typing"]]);
  frames.handle(msg(1)); // bob's message ends his typing
  assert.equal(room.typing.size, 0);
});

test("a new message in the shown room marks the log as appended", () => {
  const { frames, page } = setup({ me: "ann" });
  join(frames, "general", 0);
  page.dirty.length = 0;
  frames.handle(msg(1, { username: "ann" }));
  assert.deepEqual(page.dirty.find(([part]) => part === "log"), ["log", { appended: true, mine: true }]);
});

// ------------------------------------------------------------ request ids

/** The room is joined and its latest page (seqs 51-100) answered; returns the room. */
function withLatestPage(frames, page) {
  join(frames, "general", 100);
  const latest = Array.from({ length: PAGE_SIZE }, (_, i) => msg(51 + i));
  frames.handle({ type: "history", room: "general", messages: latest, id: idOf(page, lastHistory) });
  return frames.chat.rooms.get("general");
}

test("every frame sent carries a request id of its own", () => {
  const { frames, page, outbox, chat } = setup({ me: "ann" });
  outbox.add("general", "one");
  frames.handle({ type: "hello", username: "ann", rooms: [{ room: "general" }] });
  join(frames, "general", 0);
  chat.rooms.get("general").lastTypingSent = -10_000;
  frames.noteTyping();
  assert.deepEqual(sentTypes(page), ["join", "history", "send", "typing"]);
  const ids = page.sent.map((f) => f.id);
  assert.ok(ids.every(Number.isInteger), String(ids));
  assert.equal(new Set(ids).size, ids.length, "no id is used twice");
});

test("a refused history page does not mislabel the page answered after it", () => {
  const { frames, page } = setup();
  const room = withLatestPage(frames, page);
  frames.loadOlder(); // the page before 51
  const older = idOf(page, lastHistory);
  frames.handle(msg(102)); // 101 is missing: asks for it
  const hole = idOf(page, lastHistory);
  assert.deepEqual(bare(page.sent.findLast(lastHistory)), { type: "history", room: "general", after: 100, limit: 100 });
  frames.handle({ type: "error", code: "rate_limited", message: "slow down", ref: null, retry_after: 1, id: older });
  assert.equal(room.loadingOlder, false, "the older page is no longer on its way");
  frames.handle({ type: "history", room: "general", messages: [msg(101)], id: hole });
  // Matched in order of asking, this short page would be the older page and mean "nothing
  // before 51": the beginning of the room would show above message 51.
  assert.equal(room.historyDone, false);
  assert.deepEqual(room.historyQueue, []);
  assert.equal(room.seen, 102);
  page.dirty.length = 0;
  frames.loadOlder();
  assert.deepEqual(bare(page.sent.at(-1)), { type: "history", room: "general", before: 51, limit: PAGE_SIZE });
});

test("history answers in another order than asked are each taken for what they answer", () => {
  const { frames, page, chat } = setup();
  join(frames, "general", 100);
  const latest = idOf(page, lastHistory);
  frames.handle(msg(102));
  const hole = idOf(page, lastHistory);
  frames.handle({ type: "history", room: "general", messages: [msg(101)], id: hole });
  const room = chat.rooms.get("general");
  assert.equal(room.historyDone, false, "a short hole page says nothing about the beginning");
  assert.deepEqual(room.historyQueue, ["latest"]);
  page.dirty.length = 0;
  const full = Array.from({ length: PAGE_SIZE }, (_, i) => msg(51 + i));
  frames.handle({ type: "history", room: "general", messages: full, id: latest });
  assert.equal(room.historyDone, false, "a full latest page: there may be more before it");
  assert.deepEqual(page.dirty.find(([part]) => part === "log"), ["log", { reset: true }]);
  assert.deepEqual(room.historyQueue, []);
});

test("a refused first page is asked for again once the server may take it", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { frames, page, chat } = setup();
  join(frames, "general", 100);
  const room = chat.rooms.get("general");
  frames.handle({ type: "error", code: "unavailable", message: "retry", ref: null, id: idOf(page, lastHistory) });
  assert.deepEqual([room.opened, room.historyQueue], [false, []], "no spinner for a page not coming");
  const asked = page.sent.length;
  t.mock.timers.tick(2999);
  assert.equal(page.sent.length, asked);
  t.mock.timers.tick(1);
  assert.deepEqual(bare(page.sent.at(-1)), { type: "history", room: "general", limit: PAGE_SIZE });
  assert.equal(room.opened, true);
});

test("a refused join can be sent again; the error of a typing frame is only about its room", () => {
  const { frames, page, chat } = setup({ rooms: ["general", "design"] });
  frames.handle({ type: "hello", username: "ann", rooms: [{ room: "general" }, { room: "design" }] });
  const design = idOf(page, (f) => f.type === "join" && f.room === "design");
  frames.handle({ type: "error", code: "rate_limited", message: "slow down", ref: null, retry_after: 1, id: design });
  assert.equal(chat.rooms.get("design").joining, null);
  frames.joinAll();
  const again = page.sent.at(-1);
  assert.deepEqual(bare(again), { type: "join", room: "design" });
  assert.notEqual(again.id, design);
  join(frames, "general", 0);
  chat.rooms.get("general").lastTypingSent = -10_000;
  frames.noteTyping();
  assert.equal(page.sent.at(-1).type, "typing");
  frames.handle({ type: "error", code: "not_found", message: "gone", ref: null, id: page.sent.at(-1).id });
  assert.equal(page.refreshes, 2, "hello asked for the room list once, the error once more");
});

test("answers to a socket that closed settle nothing on the next one", () => {
  const { frames, page, chat } = setup();
  const room = withLatestPage(frames, page);
  frames.loadOlder();
  const older = idOf(page, lastHistory);
  frames.socketClosed();
  join(frames, "general", 100);
  frames.handle({ type: "history", room: "general", messages: [msg(50)], id: older });
  assert.equal(room.historyDone, false, "not the older page: that one was asked on the old socket");
  assert.deepEqual([room.loadingOlder, chat.rooms.get("general").historyQueue], [false, []]);
});

// ------------------------------------------------------------ v2: events, reads, DMs
/** A fake page that also records alerts, refused actions and removed rooms. */
function setupV2(options) {
  const t = setup(options);
  Object.assign(t.page, { alerts: [], failures: [], removedRooms: [] });
  Object.assign(t.frames.host, {
    alert: (what) => t.page.alerts.push(`${what.room.name}: ${what.username}: ${what.text}`),
    actionFailed: (text) => t.page.failures.push(text),
    removed: (room) => t.page.removedRooms.push(room.name),
  });
  let n = 0;
  t.frames.newId = () => `a${++n}`;
  return t;
}
const event = (type, seq, extra = {}) => ({ type, room: "general", seq, username: "bob", ts: `t${seq}`, client_id: "x", ...extra });

test("edit, delete, reaction and topic events change the room; replayed ones change nothing more", () => {
  const { frames, chat, page } = setupV2();
  join(frames, "general", 1);
  frames.handle(msg(2));
  const live = [
    event("edit", 3, { target: 2, text: "fixed" }),
    event("reaction", 4, { target: 2, emoji: "👍", on: true }),
    event("reaction", 5, { target: 2, emoji: "👍", on: true, username: "ann" }),
    event("topic", 6, { topic: "Release day" }),
  ];
  for (const e of live) frames.handle(e);
  for (const e of live) frames.handle(e); // a resume replays them
  const room = chat.rooms.get("general");
  const m = room.messages.get(2);
  assert.deepEqual([m.text, m.edited, m.reactions], ["fixed", "t3", { "👍": ["bob", "ann"] }]);
  assert.equal(room.topic, "Release day");
  assert.equal(room.seen, 6, "events move the resume point");
  assert.ok(page.dirty.some(([part]) => part === "header"), "the topic is drawn");
  frames.handle(event("delete", 7, { target: 2 }));
  frames.handle(event("edit", 8, { target: 2, text: "undead" }));
  assert.deepEqual([m.deleted, m.text, m.reactions], [true, "", {}]);
});

test("edit, delete, react and topic go out with a client_id; an ack settles, an error is told", () => {
  const { frames, page } = setupV2();
  join(frames, "general", 5);
  assert.equal(frames.edit("general", 3, "new text"), true);
  assert.equal(frames.react("general", 3, "🎉", true), true);
  assert.equal(frames.deleteMessage("general", 3), true);
  assert.equal(frames.setTopic("general", "t"), true);
  const sent = page.sent.slice(-4).map(bare);
  assert.deepEqual(sent, [
    { type: "edit", room: "general", target: 3, text: "new text", client_id: "a1" },
    { type: "react", room: "general", target: 3, emoji: "🎉", on: true, client_id: "a2" },
    { type: "delete", room: "general", target: 3, client_id: "a3" },
    { type: "topic", room: "general", topic: "t", client_id: "a4" },
  ]);
  frames.handle({ type: "ack", client_id: "a1", room: "general", seq: 6 });
  frames.handle({ type: "error", code: "forbidden", message: "no", ref: "a4" });
  frames.handle({ type: "error", code: "not_found", message: "no", ref: "a1" }); // already acked: not ours
  assert.deepEqual(page.failures, ["You can't set the topic there."]);
  assert.equal(page.refreshes, 1, "an unmatched not_found asks for the room list");
  assert.equal(frames.edit("nowhere", 1, "x"), false, "a room not joined: nothing sent");
});

test("a reply carries reply_to", () => {
  const { frames, outbox, page } = setupV2();
  outbox.add("general", "me too", 4);
  join(frames, "general", 4);
  assert.deepEqual(bare(page.sent.find((f) => f.type === "send")), {
    type: "send",
    room: "general",
    text: "me too",
    client_id: "c1",
    reply_to: 4,
  });
});

test("a message with files carries their ids; text may be empty", () => {
  const { frames, outbox, page } = setupV2();
  const files = [{ id: "f1", name: "a.png" }, { id: "f2", name: "b.pdf" }];
  outbox.add("general", "", null, files);
  join(frames, "general", 4);
  assert.deepEqual(bare(page.sent.find((f) => f.type === "send")), {
    type: "send",
    room: "general",
    text: "",
    client_id: "c1",
    attachments: ["f1", "f2"],
  });
});

test("a message of files only is announced and alerted by what it carries", () => {
  const { frames, page, chat } = setupV2({ rooms: ["general", "dm~0123456789"] });
  chat.rooms.get("dm~0123456789").kind = "dm";
  join(frames, "general", 0);
  join(frames, "dm~0123456789", 0);
  const photo = { id: "f1", name: "cat.png", type: "image/png", size: 9, width: 4, height: 3 };
  frames.handle(msg(1, { text: "", attachments: [photo] }));
  frames.handle(msg(1, { room: "dm~0123456789", text: "", attachments: [photo, photo] }));
  assert.deepEqual(page.announced, ["bob: Image: cat.png", "New message in ann from bob"]);
  assert.deepEqual(page.alerts, ["dm~0123456789: bob: 2 files"]);
});

test("reading: a read frame when the shown room can be seen to its end, not otherwise", () => {
  const { frames, chat, page } = setupV2({ rooms: ["general", "design"] });
  frames.handle({ type: "hello", username: "ann", rooms: [
    { room: "general", last_seq: 3, last_read: 3, unread: 0, mentions: 0 },
    { room: "design", last_seq: 9, last_read: 4, unread: 2, mentions: 1 },
  ] });
  join(frames, "general", 3);
  frames.handle({ type: "history", room: "general", messages: [], id: idOf(page, lastHistory) });
  join(frames, "design", 9);
  page.visible = false; // hidden, or scrolled up
  frames.handle(msg(4));
  frames.handle(msg(10, { room: "design", mentions: ["ann"] }));
  const [general, design] = ["general", "design"].map((n) => chat.rooms.get(n));
  assert.deepEqual([general.unread, design.unread, design.mentions], [1, 3, 2]);
  assert.equal(chat.totalUnread(), 4);
  assert.equal(page.sent.some((f) => f.type === "read"), false);
  page.visible = true;
  frames.readCurrent();
  assert.deepEqual(bare(page.sent.at(-1)), { type: "read", room: "general", seq: 4 });
  assert.equal(general.unread, 0);
  frames.readCurrent();
  assert.equal(page.sent.filter((f) => f.type === "read").length, 1, "told once");
  // Another tab of ours read design up to its end.
  frames.handle({ type: "read", room: "design", seq: 10 });
  assert.deepEqual([design.unread, design.mentions, design.lastRead], [0, 0, 10]);
});

test("a deleted unread message stops counting", () => {
  const { frames, chat } = setupV2({ current: "general", rooms: ["general", "design"] });
  join(frames, "design", 0);
  frames.handle(msg(1, { room: "design" }));
  frames.handle(msg(2, { room: "design" }));
  frames.handle(event("delete", 3, { room: "design", target: 1 }));
  assert.equal(chat.rooms.get("design").unread, 1);
});

test("mentions and DMs alert (the page decides when); notify counts a room not joined", () => {
  const { frames, chat, page } = setupV2({ rooms: ["general", "design"] });
  join(frames, "general", 0);
  frames.handle(msg(1, { text: "hi @ann", mentions: ["ann"] }));
  frames.handle(msg(2, { text: "no mention" }));
  const design = chat.rooms.get("design");
  design.known = true;
  frames.handle({ type: "notify", room: "design", seq: 7, username: "cy", text: "@ann look" });
  frames.handle({ type: "notify", room: "design", seq: 7, username: "cy", text: "@ann look" });
  assert.deepEqual([design.unread, design.mentions, design.lastSeq], [1, 1, 7]);
  const before = page.refreshes;
  frames.handle({ type: "notify", room: "dm~0123456789abcdef", seq: 1, username: "cy", text: "psst" });
  assert.equal(page.refreshes, before + 1, "a DM we did not know: the room list has it");
  assert.deepEqual(page.alerts, [
    "general: bob: hi @ann",
    "design: cy: @ann look",
    "design: cy: @ann look",
    "dm~0123456789abcdef: cy: psst",
  ]);
});

test("removed: the room goes, with its unsent messages", () => {
  const { frames, chat, outbox, page } = setupV2({ current: "secret", rooms: ["general", "secret"] });
  outbox.add("secret", "unsent");
  frames.handle({ type: "removed", room: "secret" });
  assert.equal(chat.rooms.has("secret"), false);
  assert.equal(outbox.inRoom("secret").length, 0);
  assert.deepEqual(page.removedRooms, ["secret"]);
  assert.equal(page.roomsChanged, 1);
  frames.handle({ type: "removed", room: "general" });
  assert.equal(chat.rooms.has("general"), true, "general stays");
});

test("member events keep a member list up to date", () => {
  const { frames, chat } = setupV2({ current: "secret", rooms: ["secret"] });
  const room = chat.rooms.get("secret");
  room.members = ["ann", "bob"];
  join(frames, "secret", 0);
  frames.handle(event("member", 1, { room: "secret", username: "cy", change: "invited", by: "ann", client_id: null }));
  frames.handle(event("member", 2, { room: "secret", username: "bob", change: "removed", by: "ann", client_id: null }));
  assert.deepEqual(room.members, ["ann", "cy"]);
});

test("a short page filling a hole moves past the seqs of other events in it", () => {
  const { frames, chat, page } = setupV2({ current: null });
  join(frames, "general", 3);
  frames.handle(msg(8)); // 4..7 missing
  const hole = idOf(page, lastHistory);
  // 4 and 6 were messages; 5 and 7 an edit and a reaction, already applied in the page.
  frames.handle({ type: "history", room: "general", messages: [msg(4), msg(6, { edited: "t7" })], id: hole });
  assert.equal(chat.rooms.get("general").seen, 8);
});

test("mentionedIn: the names after @, trailing dots and dashes dropped", () => {
  assert.deepEqual(mentionedIn("hi @ann. and @bob-x- @"), ["ann", "bob-x"]);
});

test("no read frame before the shown room's first page is drawn; the divider waits for the counts", () => {
  const { frames, chat, page } = setupV2();
  const room = chat.rooms.get("general");
  room.dividerPending = true; // shown at load, before hello
  frames.handle({ type: "hello", username: "ann", rooms: [{ room: "general", last_seq: 9, last_read: 6, unread: 3, mentions: 0 }] });
  assert.equal(room.dividerSeq, 6);
  assert.ok(page.dirty.some(([part, detail]) => part === "log" && detail?.reset));
  join(frames, "general", 9);
  assert.equal(page.sent.some((f) => f.type === "read"), false, "the latest page is not here yet");
  frames.handle({ type: "history", room: "general", messages: [msg(7), msg(8), msg(9)], id: idOf(page, lastHistory) });
  frames.readCurrent(); // the page drew the log
  assert.deepEqual(bare(page.sent.at(-1)), { type: "read", room: "general", seq: 9 });
  assert.equal(room.dividerSeq, 6, "the divider stays while the room is shown");
});

test("reveal: older pages are loaded until the message is held with context, then shown", () => {
  const { frames, chat, page } = setup();
  const revealed = [];
  frames.host.revealed = (room, seq) => revealed.push([room.name, seq]);
  const room = chat.rooms.get("general");
  frames.reveal(room, 60); // before the room is even joined: waits for its pages
  assert.deepEqual(revealed, []);
  join(frames, "general", 200);
  const run = (first, length) => Array.from({ length }, (_, i) => msg(first + i));
  frames.handle({ type: "history", room: "general", messages: run(151, PAGE_SIZE), id: idOf(page, lastHistory) });
  assert.deepEqual(bare(page.sent.at(-1)), { type: "history", room: "general", before: 151, limit: 100 });
  frames.handle({ type: "history", room: "general", messages: run(101, 50), id: idOf(page, lastHistory) });
  assert.deepEqual(revealed, []);
  assert.deepEqual(bare(page.sent.at(-1)), { type: "history", room: "general", before: 101, limit: 100 });
  frames.handle({ type: "history", room: "general", messages: run(1, 100), id: idOf(page, lastHistory) });
  assert.deepEqual(revealed, [["general", 60]], "held with messages above it");
  assert.deepEqual(seqs(room).slice(0, 1), [1]);
  assert.equal(room.loadingOlder, false);
  assert.equal(page.sent.filter(lastHistory).length, 3, "no page more than needed");
});

test("reveal: a message already held is shown at once; leaving the room drops the reveal", () => {
  const { frames, chat, page } = setup({ rooms: ["general", "dev"] });
  const revealed = [];
  frames.host.revealed = (room, seq) => revealed.push(seq);
  join(frames, "general", 3);
  frames.handle({ type: "history", room: "general", messages: [msg(1), msg(2), msg(3)], id: idOf(page, lastHistory) });
  frames.reveal(chat.rooms.get("general"), 2);
  assert.deepEqual(revealed, [2], "the beginning is held");
  frames.reveal(chat.rooms.get("dev"), 7);
  assert.equal(frames.revealing, null, "dev is not the shown room");
  assert.deepEqual(revealed, [2]);
});

test("reveal: a message older than the room's beginning is revealed once the beginning is held", () => {
  const { frames, chat, page } = setup();
  const revealed = [];
  frames.host.revealed = (room, seq) => revealed.push(seq);
  join(frames, "general", 60);
  const latest = Array.from({ length: PAGE_SIZE }, (_, i) => msg(2 + i)); // seq 1 is not a message
  frames.handle({ type: "history", room: "general", messages: latest, id: idOf(page, lastHistory) });
  frames.reveal(chat.rooms.get("general"), 1);
  assert.deepEqual(bare(page.sent.at(-1)), { type: "history", room: "general", before: 2, limit: 100 });
  frames.handle({ type: "history", room: "general", messages: [], id: idOf(page, lastHistory) });
  assert.deepEqual(revealed, [1], "the beginning is held: shown (or said to be gone) now");
});
