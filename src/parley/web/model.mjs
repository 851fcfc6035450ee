/* What the page knows: rooms, their messages by seq, read marks. DOM-free (unit-tested under
 * Node); the frame handling (frames.mjs) keeps it up to date, the views draw it. */

export const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;
export const ROOM_RE = /^[a-z0-9_-]{1,64}$/; // a new room's name
// How the server names a room to us: its name, or name~tag when another room we see has
// that name (docs/protocol.md, "Room names").
export const ROOM_REF_RE = /^[a-z0-9_-]{1,64}(~[0-9a-f]{10})?$/;
export const GENERAL = "general";

export class Room {
  constructor(name) {
    this.name = name;
    this.private = false;
    this.owner = null;
    this.known = false; // the server has told us about it (room list, hello or joined)
    this.joining = null; // the id of the socket a join was sent on
    this.lastSeq = 0; // highest seq known to exist in the room
    this.seen = null; // resume point: every message <= seen is held (or deliberately not loaded)
    this.messages = new Map(); // seq -> message
    this.sorted = null; // cached ascending array
    this.joined = false; // joined on the current socket
    this.opened = false; // latest page requested this session
    this.historyQueue = []; // kinds of the history pages asked for and not yet answered
    this.loadingOlder = false;
    this.historyDone = false;
    this.online = new Set();
    this.members = null; // for private rooms: from GET /api/rooms/{room}/members
    this.typing = new Map(); // username -> timer
    this.lastTypingSent = 0;
    this.dividerSeq = null; // "new messages" divider after this seq
    this.draft = "";
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

  /** Keep a message; returns true when it is new (one copy per seq, whatever brought it). */
  store(m) {
    if (this.messages.has(m.seq)) return false;
    this.messages.set(m.seq, {
      room: m.room,
      seq: m.seq,
      username: m.username,
      text: m.text,
      ts: m.ts,
      client_id: m.client_id ?? null,
    });
    this.sorted = null;
    if (m.seq > this.lastSeq) this.lastSeq = m.seq;
    return true;
  }

  /**
   * Move the contiguous resume point forward; returns true when a message beyond it
   * shows a hole (one the server should never leave) that no request is filling yet.
   */
  advanceSeen() {
    if (this.seen === null) return false;
    while (this.messages.has(this.seen + 1)) this.seen++;
    const highest = this.sortedMessages().at(-1);
    return Boolean(highest && highest.seq > this.seen + 1 && !this.historyQueue.includes("after"));
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

/**
 * Room -> last seq read. They only move forward, and are saved per user (localStorage in
 * the browser). On a first visit (nothing saved yet) what already exists counts as read.
 */
export class ReadMarks {
  constructor(saved = null, onChange = () => {}) {
    const usable = saved !== null && typeof saved === "object" && !Array.isArray(saved);
    this.marks = usable ? { ...saved } : {};
    this.firstVisit = !usable;
    this.onChange = onChange;
  }

  has(room) {
    return Object.hasOwn(this.marks, room);
  }

  get(room) {
    return this.has(room) ? this.marks[room] : undefined;
  }

  /** Move the mark of `room` up to `seq`; never back. Returns whether it moved. */
  advance(room, seq) {
    if (this.has(room) && this.marks[room] >= seq) return false;
    this.marks[room] = seq;
    this.onChange();
    return true;
  }

  /** A room heard of after the first visit: everything in it is unread. */
  startUnread(room) {
    if (!this.has(room)) this.advance(room, 0);
  }

  /** The end of the first visit: rooms without a mark start at `seq(room)`. */
  settleFirstVisit(rooms, seq) {
    for (const room of rooms) if (!this.has(room.name)) this.marks[room.name] = seq(room);
    this.firstVisit = false;
    this.onChange();
  }

  toJSON() {
    return this.marks;
  }
}

/** The rooms of one signed-in session and which one is shown. */
export class Chat {
  constructor(me = null, marks = new ReadMarks()) {
    this.me = me;
    this.marks = marks;
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
      if (!this.marks.firstVisit) this.marks.startUnread(name);
    }
    return room;
  }

  /** `general` first, then public rooms, then private ones, by name. */
  sortedRooms() {
    return [...this.rooms.values()].sort((a, b) => {
      if (a.name === GENERAL) return -1;
      if (b.name === GENERAL) return 1;
      if (a.private !== b.private) return a.private ? 1 : -1;
      return a.name.localeCompare(b.name);
    });
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
      const room = this.ensureRoom(info.room);
      room.known = true;
      if (typeof info.private === "boolean") room.private = info.private;
      if (info.owner) room.owner = info.owner;
      if (typeof info.last_seq === "number") room.lastSeq = Math.max(room.lastSeq, info.last_seq);
    }
    if (this.marks.firstVisit && authoritative) {
      // First visit in this browser: the backlog of public rooms counts as read; what is in
      // the private rooms we were invited to is shown as unread.
      this.marks.settleFirstVisit(this.rooms.values(), (room) => (room.private ? 0 : room.lastSeq));
    }
    const dropped = [];
    if (authoritative) {
      for (const name of [...this.rooms.keys()]) {
        if (!names.has(name) && name !== GENERAL) {
          this.rooms.delete(name);
          dropped.push(name);
        }
      }
    }
    this.ensureRoom(GENERAL);
    return dropped;
  }

  readSeq(room) {
    return this.marks.get(room.name) ?? (this.marks.firstVisit ? room.lastSeq : 0);
  }

  unread(room) {
    return Math.max(0, room.lastSeq - this.readSeq(room));
  }

  /** Everything known in `room` has been seen. */
  markRead(room) {
    if (!room.known) return false; // nothing heard from the server about it yet
    return this.marks.advance(room.name, room.lastSeq);
  }
}
