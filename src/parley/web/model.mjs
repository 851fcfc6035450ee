/* What the page knows: rooms, their messages by seq (edits, deletions and reactions applied),
 * the server's read markers and unread counts. DOM-free (unit-tested under Node); the frame
 * handling (frames.mjs) keeps it up to date, the views draw it. */

import { normalizeFiles } from "./files.mjs";

export const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;
export const ROOM_RE = /^[a-z0-9_-]{1,64}$/; // a new room's name
// How the server names a room to us: its name, name~tag when another room we see has that
// name (docs/protocol.md, "Room names"), or dm~<hex> for a DM (never a bare name).
export const ROOM_REF_RE = /^[a-z0-9_-]{1,64}(~[0-9a-f]{10,32})?$/;
export const GENERAL = "general";

export class Room {
  constructor(name) {
    this.name = name;
    this.private = false;
    this.kind = "room"; // or "dm"
    this.topic = "";
    this.owner = null;
    this.known = false; // the server has told us about it (room list, hello or joined)
    this.joining = null; // the id of the socket a join was sent on
    this.lastSeq = 0; // highest seq known to exist in the room (every event counts)
    this.seen = null; // resume point: every event <= seen is held (or deliberately not loaded)
    this.messages = new Map(); // seq -> message
    this.events = new Set(); // seqs of other events (edit, reaction…) beyond `seen`
    this.applied = new Set(); // seqs of events applied: a replayed one is applied once
    this.sorted = null; // cached ascending array
    // The server's read marker and counts (hello, GET /api/rooms), kept up to date live.
    this.lastRead = 0;
    this.unread = 0;
    this.mentions = 0;
    this.countsAt = 0; // the counts include every message up to this seq
    this.joined = false; // joined on the current socket
    this.opened = false; // latest page requested this session
    this.historyQueue = []; // kinds of the history pages asked for and not yet answered
    this.loadingOlder = false;
    this.historyDone = false;
    this.online = new Set();
    this.members = null; // from GET /api/rooms/{room}/members (a DM: from the room list)
    this.seenNames = new Set(); // who wrote here: mention completion without a member list
    this.typing = new Map(); // username -> timer
    this.lastTypingSent = 0;
    this.dividerSeq = null; // "new messages" divider after this seq
    this.dividerPending = false; // shown before the server's counts came: place it when they do
    this.countsKnown = false; // the server's marker and counts arrived
    this.draft = "";
    this.replyTo = null; // the seq of the message the composer answers
  }

  get isDm() {
    return this.kind === "dm";
  }

  /** Messages in ascending seq order. */
  sortedMessages() {
    if (!this.sorted) this.sorted = [...this.messages.values()].sort((a, b) => a.seq - b.seq);
    return this.sorted;
  }

  firstSeq() {
    const list = this.sortedMessages();
    return list.length ? list[0].seq : null;
  }

  highestMessageSeq() {
    return this.sortedMessages().at(-1)?.seq ?? 0;
  }

  /** Keep a message; returns true when it is new (one copy per seq, whatever brought it). */
  store(m) {
    if (this.messages.has(m.seq)) return false;
    this.messages.set(m.seq, normalizeMessage(m));
    this.sorted = null;
    this.seenNames.add(m.username);
    if (m.seq > this.lastSeq) this.lastSeq = m.seq;
    return true;
  }

  /**
   * Apply an event (edit, delete, reaction, topic, member) with its seq; returns the message
   * it changed, `this` for a change of the room, or null. Each seq is applied once.
   */
  applyEvent(ev) {
    if (ev.seq > this.lastSeq) this.lastSeq = ev.seq;
    if (this.seen !== null && ev.seq > this.seen) this.events.add(ev.seq);
    if (this.applied.has(ev.seq)) return null;
    this.applied.add(ev.seq);
    if (ev.type === "topic") {
      if (typeof ev.topic !== "string") return null;
      this.topic = ev.topic;
      return this;
    }
    if (ev.type === "member") return this;
    const changed = applyToMessage(this.messages.get(ev.target), ev);
    if (changed) this.sorted = null;
    return changed;
  }

  /** The last message of `me` that can still be edited (Up arrow in an empty composer). */
  lastOwn(me) {
    const list = this.sortedMessages();
    for (let i = list.length - 1; i >= 0; i--) if (list[i].username === me && !list[i].deleted) return list[i];
    return null;
  }

  /**
   * Move the contiguous resume point forward over messages and other events; returns true
   * when an event beyond it shows a hole (one the server should never leave) that no request
   * is filling yet.
   */
  advanceSeen() {
    if (this.seen === null) return false;
    while (this.messages.has(this.seen + 1) || this.events.has(this.seen + 1)) this.events.delete(++this.seen);
    const highest = Math.max(this.highestMessageSeq(), ...this.events);
    return highest > this.seen + 1 && !this.historyQueue.includes("after");
  }

  /**
   * A page of history filling a hole came: history holds messages only, so the seqs of the
   * other events in between will never come; move past them (their effects are in the page).
   */
  skipTo(seq) {
    if (this.seen === null || seq <= this.seen) return;
    this.seen = seq;
    for (const s of this.events) if (s <= seq) this.events.delete(s);
  }

  // ------------------------------------------------------- read marker, counts
  /** Take the server's read marker and counts (they cover every message up to `last_seq`). */
  setCounts(info, me) {
    // The server's word: a read frame lost with a socket is then sent again.
    if (Number.isInteger(info.last_read)) this.lastRead = info.last_read;
    const upTo = Number.isInteger(info.last_seq) ? info.last_seq : this.lastSeq;
    // A server without counts (v1 + read markers): every seq after the marker is a message.
    const unread = Number.isInteger(info.unread) ? info.unread : Number.isInteger(info.last_read) ? upTo - this.lastRead : null;
    if (unread === null) return;
    this.countsKnown = true;
    // Messages held beyond what the server counted (they came live meanwhile) still count.
    const extra = this.countUnread(Math.max(upTo, this.lastRead), me);
    this.unread = Math.max(0, unread) + extra.unread;
    this.mentions = (Number.isInteger(info.mentions) ? info.mentions : 0) + extra.mentions;
    this.countsAt = Math.max(upTo, this.highestMessageSeq());
  }

  /** The room is opened: the "new messages" divider goes after the read marker, if unread. */
  placeDivider() {
    this.dividerSeq = this.unread > 0 ? this.lastRead : null;
  }

  /** Messages held after `after`, by others and not deleted: {unread, mentions}. */
  countUnread(after, me) {
    let unread = 0;
    let mentioned = 0;
    for (const m of this.messages.values()) {
      if (m.seq <= after || m.deleted || m.username === me) continue;
      unread++;
      if (mentions(m, me)) mentioned++;
    }
    return { unread, mentions: mentioned };
  }

  /** A new message arrived: count it once, unless it is ours or already read. */
  countMessage(m, me) {
    if (m.seq <= this.countsAt) return;
    this.countsAt = m.seq;
    if (m.username === me || m.deleted || m.seq <= this.lastRead) return;
    this.unread++;
    if (mentions(m, me)) this.mentions++;
  }

  /** Message `before` (its state until now) was deleted: if it counted as unread, no more. */
  uncountMessage(before, me) {
    if (before.username === me || before.seq <= this.lastRead || before.seq > this.countsAt) return;
    this.unread = Math.max(0, this.unread - 1);
    if (mentions(before, me)) this.mentions = Math.max(0, this.mentions - 1);
  }

  /**
   * The read marker moved to `seq` (on this page or another of our sockets). Returns false
   * when the counts after it cannot be worked out here (not everything after it is held).
   */
  readUpTo(seq, me) {
    if (seq <= this.lastRead) return true;
    this.lastRead = seq;
    if (seq >= this.lastSeq) {
      this.unread = 0;
      this.mentions = 0;
      return true;
    }
    const first = this.firstSeq();
    if (this.seen === null || first === null || first > seq + 1) return false;
    ({ unread: this.unread, mentions: this.mentions } = this.countUnread(seq, me));
    return true;
  }

  /** The socket closed: nothing is joined, asked for or known to be online on it any more. */
  forgetSocket() {
    this.joined = false;
    // An unanswered first page is asked for again after the next join.
    if (this.historyQueue.includes("latest")) this.opened = false;
    this.historyQueue = [];
    this.loadingOlder = false;
    this.online.clear();
    for (const timer of this.typing.values()) clearTimeout(timer);
    this.typing.clear();
  }
}

export function validMessage(m) {
  return (
    Boolean(m) &&
    typeof m.room === "string" &&
    Number.isInteger(m.seq) &&
    m.seq > 0 &&
    typeof m.username === "string" &&
    typeof m.text === "string"
  );
}

/** A room event other than a message (edit, delete, reaction, topic, member) worth applying. */
export function validEvent(ev) {
  return Boolean(ev) && typeof ev.room === "string" && Number.isInteger(ev.seq) && ev.seq > 0;
}

/** A copy of the server's reaction map: emoji -> usernames (in the order they reacted). */
function copyReactions(reactions) {
  const out = {};
  if (!reactions || typeof reactions !== "object" || Array.isArray(reactions)) return out;
  for (const [emoji, names] of Object.entries(reactions)) {
    const list = Array.isArray(names) ? names.filter((n) => typeof n === "string") : [];
    if (list.length) out[emoji] = [...new Set(list)];
  }
  return out;
}

/**
 * The fields the page keeps of a message (v2: reply_to, edited, deleted, reactions, mentions,
 * attachments). A tombstone carries nothing.
 */
export function normalizeMessage(m) {
  const deleted = m.deleted === true;
  return {
    room: m.room,
    seq: m.seq,
    username: m.username,
    text: deleted ? "" : m.text,
    ts: m.ts,
    client_id: m.client_id ?? null,
    reply_to: Number.isInteger(m.reply_to) ? m.reply_to : null,
    edited: typeof m.edited === "string" || typeof m.edited === "number" ? m.edited : null,
    deleted,
    reactions: deleted ? {} : copyReactions(m.reactions),
    mentions: Array.isArray(m.mentions) ? m.mentions.filter((n) => typeof n === "string") : [],
    attachments: deleted ? [] : normalizeFiles(m.attachments),
  };
}

/** Whether `m` mentions `me` (the server lists who a message mentions; names ignore case). */
export function mentions(m, me) {
  if (!me || !m || !Array.isArray(m.mentions)) return false;
  const lower = me.toLowerCase();
  return m.mentions.some((name) => name.toLowerCase() === lower);
}

/**
 * Apply an event frame to the message it targets; idempotent, so a history page followed by
 * a replay of the events it already reflects ends in the same state. Returns the message
 * changed, or null (unknown target, an edit of a deleted message, nothing to do).
 */
export function applyToMessage(m, ev) {
  if (!m) return null;
  switch (ev.type) {
    case "edit":
      if (m.deleted || typeof ev.text !== "string") return null; // a tombstone stays one
      m.text = ev.text;
      m.edited = ev.ts ?? m.edited ?? true;
      return m;
    case "delete":
      if (m.deleted) return null;
      m.deleted = true;
      m.text = "";
      m.reactions = {};
      m.attachments = [];
      return m;
    case "reaction":
      return m.deleted ? null : applyReaction(m, ev);
    default:
      return null;
  }
}

function applyReaction(m, ev) {
  if (typeof ev.emoji !== "string" || !ev.emoji || typeof ev.username !== "string") return null;
  const names = m.reactions[ev.emoji] ?? [];
  const has = names.includes(ev.username);
  if (ev.on === false) {
    if (!has) return null;
    const left = names.filter((n) => n !== ev.username);
    if (left.length) m.reactions[ev.emoji] = left;
    else delete m.reactions[ev.emoji];
    return m;
  }
  if (has) return null;
  m.reactions[ev.emoji] = [...names, ev.username];
  return m;
}

/** How a DM is shown: its other members' names (yourself alone: your own name). */
export function dmLabel(members, me) {
  const lower = (me || "").toLowerCase();
  const others = (members || []).filter((n) => n.toLowerCase() !== lower);
  return others.length ? others.join(", ") : me || "";
}

/** The rooms of one signed-in session and which one is shown. */
export class Chat {
  constructor(me = null) {
    this.me = me;
    this.admin = false; // a server admin moderates every room (hello's "admin")
    this.rooms = new Map();
    this.current = null;
  }

  get currentRoom() {
    return this.rooms.get(this.current ?? "") ?? null;
  }

  ensureRoom(name) {
    let room = this.rooms.get(name);
    if (!room) {
      room = new Room(name);
      this.rooms.set(name, room);
    }
    return room;
  }

  /** Rooms (not DMs): `general` first, then public rooms, then private ones, by name. */
  sortedRooms() {
    return [...this.rooms.values()]
      .filter((room) => !room.isDm)
      .sort((a, b) => {
        if (a.name === GENERAL) return -1;
        if (b.name === GENERAL) return 1;
        if (a.private !== b.private) return a.private ? 1 : -1;
        return a.name.localeCompare(b.name);
      });
  }

  /** DMs, by the names they are shown under. */
  sortedDms() {
    return [...this.rooms.values()]
      .filter((room) => room.isDm)
      .sort((a, b) => this.label(a).localeCompare(this.label(b)));
  }

  /** Every room in sidebar order: rooms, then DMs. */
  sidebarOrder() {
    return [...this.sortedRooms(), ...this.sortedDms()];
  }

  /** How a room is named on screen: a DM by its other members. */
  label(room) {
    return room.isDm ? dmLabel(room.members, this.me) : room.name;
  }

  /** Take one room's description (room list, hello, POST /api/dms). */
  describe(info) {
    const room = this.ensureRoom(info.room);
    room.known = true;
    if (typeof info.private === "boolean") room.private = info.private;
    if (info.kind === "dm" || info.kind === "room") room.kind = info.kind;
    if (typeof info.topic === "string") room.topic = info.topic;
    if (info.owner) room.owner = info.owner;
    if (Array.isArray(info.members)) room.members = info.members.filter((m) => typeof m === "string");
    if (typeof info.last_seq === "number") room.lastSeq = Math.max(room.lastSeq, info.last_seq);
    room.setCounts(info, this.me);
    return room;
  }

  /**
   * Merge a room list from the server (GET /api/rooms, or hello). An authoritative list
   * (GET /api/rooms) also drops the rooms it lacks; returns their names.
   */
  mergeRooms(list, authoritative) {
    const names = new Set();
    for (const info of list) {
      if (!info || typeof info.room !== "string") continue;
      names.add(info.room);
      this.describe(info);
    }
    const dropped = [];
    if (authoritative) {
      for (const name of [...this.rooms.keys()]) {
        if (!names.has(name) && name !== GENERAL) dropped.push(name);
      }
    }
    for (const name of dropped) this.rooms.delete(name);
    this.ensureRoom(GENERAL);
    return dropped;
  }

  /** We were removed from `name` (or left it): it goes. Returns whether it was here. */
  removeRoom(name) {
    if (name === GENERAL) return false;
    return this.rooms.delete(name);
  }

  /** Unread messages over every room (the tab title). */
  totalUnread() {
    let total = 0;
    for (const room of this.rooms.values()) total += room.unread;
    return total;
  }

  /**
   * Everything held in `room` has been seen: the marker moves to its last message (the
   * counts are of messages: a reaction or an edit alone sends no read frame). Returns the
   * seq to tell the server, or null when there is nothing new to tell.
   */
  markRead(room) {
    if (!room.known) return null; // nothing heard from the server about it yet
    room.unread = 0;
    room.mentions = 0;
    const seq = room.highestMessageSeq();
    if (seq <= room.lastRead) return null;
    room.lastRead = seq;
    return seq;
  }

  /**
   * The names to complete after "@" in `room`: its members and who is online; in a public
   * room (anyone may read it, `general` lists no members) also who was seen writing there.
   */
  peopleIn(room) {
    const names = new Set(room.members ?? []);
    for (const name of room.online) names.add(name);
    if (!room.private || !room.members) for (const name of room.seenNames) names.add(name);
    return [...names].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }));
  }
}
