/* The parley.v1 frames: what the page sends (built here, and only here) and what it does with
 * each frame the server sends. DOM-free (unit-tested under Node): the page passes a `host`
 * with the socket, the redraw marks and the few things that need the browser. */

import { messageSummary } from "./files.mjs";
import { mentions, validEvent, validMessage } from "./model.mjs";
import { randomId } from "./outbox.mjs";
import { clip } from "./text.mjs";

export const PAGE_SIZE = 50; // messages per history page
const HOLE_PAGE = 100; // messages asked for at once to fill a hole in a room
const TYPING_SEND_MS = 3000; // at most one typing event per room per 3 s
const TYPING_SHOW_MS = 5000; // hide "X is typing…" after 5 s without a new one
const UNAVAILABLE_WAIT_S = 3; // the store could not take a message: try again after this
const REVEAL_CONTEXT = 5; // messages loaded above one shown from a search result
const REVEAL_PAGE = 100; // messages per older page loaded to reach it (the most the server gives)
const REVEAL_MAX_PAGES = 40; // older pages loaded at most to reach it (4,000 messages)

/** A frame from the socket's text, or null when it is not JSON or has no type. */
export function parseFrame(data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return null;
  }
  return frame && typeof frame.type === "string" ? frame : null;
}

/** The names a text mentions ("@name", docs/protocol.md): for notify frames, which list none. */
export function mentionedIn(text) {
  if (typeof text !== "string") return [];
  return [...text.matchAll(/@([A-Za-z0-9_.-]+)/g)].map((m) => m[1].replace(/[.-]+$/, ""));
}

/** What to tell the person when the server refused an edit, delete, reaction or topic. */
function actionError(action, error) {
  const what = { edit: "edit", delete: "delete", react: "react", topic: "set the topic" }[action.type] ?? "do that";
  if (error.code === "forbidden") return `You can't ${what} there.`;
  if (error.code === "not_found") return `Could not ${what}: that message is gone.`;
  if (error.code === "rate_limited") return `Slow down: try again in ${Math.max(1, Number(error.retry_after) || 1)} s.`;
  return error.message || `Could not ${what}.`;
}

/** Seconds to wait before asking again what was refused as rate_limited or unavailable. */
function retryWait(error) {
  return error.code === "rate_limited" ? Math.max(1, Number(error.retry_after) || 1) : UNAVAILABLE_WAIT_S;
}

/**
 * The frames the page sends (FrameHandler puts a request id on each: docs/protocol.md,
 * "Request ids").
 */
export const request = {
  join(room, since) {
    return since === null ? { type: "join", room } : { type: "join", room, since };
  },
  latest(room) {
    return { type: "history", room, limit: PAGE_SIZE };
  },
  before(room, seq, limit = PAGE_SIZE) {
    return { type: "history", room, before: seq, limit };
  },
  after(room, seq, limit) {
    return { type: "history", room, after: seq, limit };
  },
  send(item) {
    const frame = { type: "send", room: item.room, text: item.text, client_id: item.client_id };
    if (item.reply_to) frame.reply_to = item.reply_to;
    if (item.attachments && item.attachments.length) frame.attachments = item.attachments.map((f) => f.id);
    return frame;
  },
  edit(room, target, text, clientId) {
    return { type: "edit", room, target, text, client_id: clientId };
  },
  delete(room, target, clientId) {
    return { type: "delete", room, target, client_id: clientId };
  },
  react(room, target, emoji, on, clientId) {
    return { type: "react", room, target, emoji, on, client_id: clientId };
  },
  topic(room, topic, clientId) {
    return { type: "topic", room, topic, client_id: clientId };
  },
  read(room, seq) {
    return { type: "read", room, seq };
  },
  typing(room) {
    return { type: "typing", room };
  },
};

/**
 * Every frame the page sends carries a request id, fresh for each frame; the server echoes it
 * on the frame's answers (joined, ack, history, error). Joins and history pages wait in
 * `pending` under their id until answered, so each answer, an error above all, settles the
 * request it is about, whatever the order they come in. A send's answers are matched by its
 * client_id (which an ack and an error's `ref` carry as well); a typing frame is answered only
 * when refused.
 *
 * host: {
 *   send(frame): boolean       put a frame on the open socket (false: not sent);
 *   socketId(): number|null    the open socket's id, null when none is open;
 *   online(): boolean          hello arrived on the current socket;
 *   markDirty(part, detail?)   what must be drawn again;
 *   canSeeCurrent(): boolean   the shown room is in front of the person, scrolled to its end
 *                              (what arrives there is read);
 *   announce(text)             tell screen readers;
 *   hello(frame)               hello arrived (who we are, the connection is up);
 *   roleChanged(admin)         an admin granted or revoked our server-admin role;
 *   roomsChanged()             the room list changed (the shown room may be gone);
 *   refreshRooms()             ask the server for the room list (GET /api/rooms);
 *   refreshMembers(room)       ask the server for a room's members again;
 *   alert({room, username, text})  a mention or a DM arrived: maybe a desktop notification;
 *   actionFailed(text)         an edit, delete, reaction or topic was refused: say so;
 *   removed(room)              we were removed from `room` (or left it);
 *   now(): number
 * }
 */
export class FrameHandler {
  constructor(chat, outbox, host) {
    this.chat = chat;
    this.outbox = outbox;
    this.host = host;
    this.holdTimers = new Map(); // room -> timer ending a rate-limit hold
    this.retryTimers = new Map(); // room -> timer asking again for a refused first page
    this.pending = new Map(); // request id -> what it asked: { kind: "join"|"history", room, page? }
    this.revealing = null; // {room, seq, pages}: a message to show once loaded (reveal)
    this.lastId = 0; // the last request id used: ids are never reused in a session
    this.actions = new Map(); // client_id -> edit, delete, react or topic frame not yet acked
    this.newId = randomId;
  }

  /** Apply one server frame; unknown types are ignored. */
  handle(frame) {
    switch (frame.type) {
      case "hello":
        return this.hello(frame);
      case "joined":
        return this.joined(frame);
      case "message":
        return this.message(frame, "live");
      case "ack":
        return this.ack(frame);
      case "history":
        return this.history(frame);
      case "typing":
        return this.typing(frame);
      case "presence":
        return this.presence(frame);
      case "error":
        return this.error(frame);
      case "edit":
      case "delete":
      case "reaction":
      case "topic":
      case "member":
        return this.event(frame);
      case "read":
        return this.read(frame);
      case "notify":
        return this.notify(frame);
      case "removed":
        return this.removed(frame);
      case "account":
        return typeof frame.admin === "boolean" ? this.host.roleChanged(frame.admin) : undefined;
      default:
        return undefined;
    }
  }

  // ------------------------------------------------------------ server frames
  hello(frame) {
    this.host.hello(frame);
    this.roomList(Array.isArray(frame.rooms) ? frame.rooms : [], false);
    this.host.refreshRooms();
  }

  /** Merge the server's room list (GET /api/rooms is authoritative, hello is not). */
  roomList(list, authoritative) {
    const dropped = this.chat.mergeRooms(list, authoritative);
    if (dropped.length) this.outbox.keepRooms((name) => !dropped.includes(name));
    this.joinAll();
    this.host.markDirty("rooms");
    this.host.roomsChanged();
    const room = this.chat.currentRoom;
    if (room && room.dividerPending && room.countsKnown) {
      // Shown before the counts came (the first room at load): its divider is placed now.
      room.dividerPending = false;
      room.placeDivider();
      if (room.dividerSeq !== null) this.host.markDirty("log", { reset: true });
    }
    this.readCurrent(); // a room list older than our last read frame brought a stale marker
  }

  joined(frame) {
    this.#answered(frame);
    const room = this.chat.rooms.get(frame.room);
    if (!room) return;
    room.joined = true;
    room.known = true;
    room.joining = null;
    if (typeof frame.last_seq === "number") {
      room.lastSeq = Math.max(room.lastSeq, frame.last_seq);
      // Joined without `since`: older messages come from history on demand.
      if (room.seen === null) room.seen = frame.last_seq;
    }
    room.online = new Set(Array.isArray(frame.online) ? frame.online : []);
    if (this.#isCurrent(room)) {
      if (!room.opened) this.requestLatest(room);
      this.readCurrent();
      this.host.markDirty("members");
      this.host.markDirty("header");
    }
    this.host.markDirty("rooms");
    this.flushOutbox(room.name);
    this.#continueReveal();
  }

  message(m, source) {
    if (!validMessage(m)) return;
    const room = this.chat.rooms.get(m.room);
    if (!room) return;
    const fresh = this.#store(room, m);
    this.#advanceSeen(room);
    if (!fresh) return;
    const typingTimer = room.typing.get(m.username);
    if (typingTimer) {
      clearTimeout(typingTimer);
      room.typing.delete(m.username);
      if (this.#isCurrent(room)) this.host.markDirty("typing");
    }
    const mine = m.username === this.chat.me;
    if (mine) this.flushOutbox(room.name);
    const current = this.#isCurrent(room);
    room.countMessage(room.messages.get(m.seq), this.chat.me);
    if (current) this.readCurrent();
    if (source === "live" && !mine) {
      const said = messageSummary(room.messages.get(m.seq));
      if (current) this.host.announce(`${m.username}: ${clip(said, 200)}`);
      else this.host.announce(`New message in ${this.chat.label(room)} from ${m.username}`);
      if (room.isDm || mentions(m, this.chat.me)) this.host.alert({ room, username: m.username, text: said });
    }
    if (current) {
      this.host.markDirty("log", { appended: true, mine });
      this.host.markDirty("pending");
    }
    this.host.markDirty("rooms");
  }

  ack(frame) {
    if (this.actions.delete(frame.client_id)) return; // its event frame shows the change
    const item = this.outbox.get(frame.client_id);
    if (!item) return;
    const room = this.chat.rooms.get(item.room);
    if (room && room.messages.has(frame.seq)) {
      this.outbox.delivered(item.client_id);
    } else {
      this.outbox.acked(item, frame.seq);
      // The message frame follows (live or via resume); if it somehow is older than our
      // resume point, fetch it so the pending line can turn into the real one.
      if (room && room.seen !== null && frame.seq <= room.seen) {
        this.#askHistory(room, "after", request.after(room.name, frame.seq - 1, 1));
      }
    }
    this.flushOutbox(item.room);
  }

  history(frame) {
    const asked = this.#answered(frame);
    const room = this.chat.rooms.get(frame.room);
    if (!room) return;
    // Which page this is, by the request id it echoes. One that answers no request of ours
    // (none on this socket asked for it) is only messages: it marks nothing as loaded.
    const kind = asked?.kind === "history" && asked.room === room.name ? asked.page : null;
    if (kind !== null) this.#pageSettled(room, kind);
    const list = Array.isArray(frame.messages) ? frame.messages.filter(validMessage) : [];
    let added = 0;
    for (const m of list) if (this.#store(room, m)) added++;
    if ((kind === "latest" || kind === "before") && list.length < PAGE_SIZE) room.historyDone = true;
    const first = room.firstSeq();
    if (first !== null && first <= 1) room.historyDone = true;
    if (kind === "after") this.#filled(room, list);
    this.#advanceSeen(room);
    if (this.#isCurrent(room)) {
      if (kind === "latest") this.host.markDirty("log", { reset: true });
      else if (added) this.host.markDirty("log", { prepended: kind === "before" });
      this.host.markDirty("logTop");
      this.host.markDirty("pending");
      // Still at the top (short page, tall screen): keep going.
      if (kind === "before" || kind === "latest") this.host.markDirty("nearTop");
    }
    this.host.markDirty("rooms");
    if (kind !== null) this.#continueReveal();
  }

  typing(frame) {
    const room = this.chat.rooms.get(frame.room);
    if (!room || typeof frame.username !== "string" || frame.username === this.chat.me) return;
    const old = room.typing.get(frame.username);
    if (old) clearTimeout(old);
    room.typing.set(
      frame.username,
      setTimeout(() => {
        room.typing.delete(frame.username);
        if (this.#isCurrent(room)) this.host.markDirty("typing");
      }, TYPING_SHOW_MS),
    );
    if (this.#isCurrent(room)) this.host.markDirty("typing");
  }

  presence(frame) {
    const room = this.chat.rooms.get(frame.room);
    if (!room || typeof frame.username !== "string") return;
    if (frame.online) room.online.add(frame.username);
    else room.online.delete(frame.username);
    if (this.#isCurrent(room)) {
      this.host.markDirty("members");
      this.host.markDirty("header");
    }
  }

  /** An edit, delete, reaction, topic or member event: applied once, in seq order. */
  event(ev) {
    const room = validEvent(ev) ? this.chat.rooms.get(ev.room) : null;
    if (!room) return;
    const target = ev.type === "delete" ? room.messages.get(ev.target) : null;
    const before = target && !target.deleted ? { ...target } : null;
    const changed = room.applyEvent(ev);
    this.#advanceSeen(room);
    if (before && changed) room.uncountMessage(before, this.chat.me);
    if (ev.type === "member") this.#memberChanged(room, ev);
    if (changed && this.#isCurrent(room)) {
      this.host.markDirty(changed === room ? "header" : "log", changed === room ? undefined : { changed: true });
    }
    if (before && changed) this.host.markDirty("rooms");
  }

  /** Our read marker moved on another of our sockets. */
  read(frame) {
    const room = this.chat.rooms.get(frame.room);
    if (!room || !Number.isInteger(frame.seq)) return;
    if (!room.readUpTo(frame.seq, this.chat.me)) this.host.refreshRooms();
    this.host.markDirty("rooms");
  }

  /** A mention or a DM in a room this socket has not joined (yet): count it, maybe alert. */
  notify(frame) {
    if (typeof frame.room !== "string" || typeof frame.username !== "string") return;
    const room = this.chat.rooms.get(frame.room);
    if (!room) {
      this.host.refreshRooms(); // a DM started by someone else: the room list has it
    } else if (Number.isInteger(frame.seq) && frame.seq > room.countsAt) {
      room.countsAt = frame.seq;
      if (frame.seq > room.lastSeq) room.lastSeq = frame.seq;
      room.unread++;
      if (!room.isDm || mentions({ mentions: mentionedIn(frame.text) }, this.chat.me)) room.mentions++;
      this.host.markDirty("rooms");
    }
    const text = typeof frame.text === "string" ? frame.text : "";
    // A room not known yet is a new DM (their references start with "dm~", docs/protocol.md).
    const about = room ?? { name: frame.room, isDm: frame.room.startsWith("dm~") };
    this.host.alert({ room: about, username: frame.username, text });
  }

  /** We were removed from a room (or left it on another page): it goes. */
  removed(frame) {
    const room = this.chat.rooms.get(frame.room);
    if (!room || !this.chat.removeRoom(room.name)) return;
    this.outbox.keepRooms((name) => name !== room.name);
    room.forgetSocket();
    this.host.markDirty("rooms");
    this.host.removed(room);
    this.host.roomsChanged();
  }

  error(frame) {
    const asked = this.#answered(frame);
    if (asked) this.#refused(asked, frame);
    const action = frame.ref ? this.actions.get(frame.ref) : null;
    if (action) {
      this.actions.delete(frame.ref);
      this.host.actionFailed(actionError(action, frame));
      return;
    }
    const item = frame.ref ? this.outbox.get(frame.ref) : null;
    if (item) {
      const room = this.chat.rooms.get(item.room);
      if ((frame.code === "rate_limited" || frame.code === "unavailable") && room) {
        // Not stored: hold this one (and everything after it in the room) and try again later.
        this.#hold(item, retryWait(frame) * 1000);
      } else {
        this.outbox.fail(
          item,
          frame.code === "too_large"
            ? "Too long to send (4000 characters at most)."
            : frame.message || "The server refused this message.",
        );
        this.flushOutbox(item.room);
      }
      return;
    }
    if (frame.code === "not_found" || frame.code === "forbidden") {
      // A room we can no longer see (or that is gone): ask the server what is left.
      this.host.refreshRooms();
    }
  }

  // ----------------------------------------------------------- page requests
  /** Join every room we know on this socket; resume from the last seq seen. */
  joinAll() {
    const socket = this.host.socketId();
    if (socket === null || !this.host.online()) return;
    for (const room of this.chat.rooms.values()) {
      if (room.joined || room.joining === socket) continue;
      if (this.#ask(request.join(room.name, room.seen), { kind: "join", room: room.name })) room.joining = socket;
    }
  }

  /** Ask for the latest page of `room` (the first time it is shown on a socket). */
  requestLatest(room) {
    room.opened = true;
    this.#askHistory(room, "latest", request.latest(room.name));
    this.host.markDirty("logTop");
  }

  /** Ask for the page (of `limit` messages) before the oldest message held of the shown room. */
  loadOlder(limit = PAGE_SIZE) {
    const room = this.chat.currentRoom;
    if (!room || !room.joined || room.loadingOlder || room.historyDone || !room.opened) return;
    if (room.historyQueue.includes("latest")) return;
    const oldest = room.firstSeq() ?? (room.seen !== null ? room.seen + 1 : null);
    if (oldest === null || oldest <= 1) {
      room.historyDone = true;
      this.host.markDirty("logTop");
      return;
    }
    room.loadingOlder = true;
    this.#askHistory(room, "before", request.before(room.name, oldest, limit));
    this.host.markDirty("logTop");
  }

  /**
   * Show message `seq` of the shown room (a search result): older pages are loaded, as
   * scrolling up would, until it is held with a few messages above it; then
   * host.revealed(room, seq). The log stays one unbroken run up to the latest message.
   */
  reveal(room, seq) {
    this.revealing = { room: room.name, seq, pages: 0 };
    this.#continueReveal();
  }

  #continueReveal() {
    const goal = this.revealing;
    if (!goal) return;
    const room = this.chat.currentRoom;
    if (!room || room.name !== goal.room) {
      this.revealing = null; // the person went elsewhere meanwhile
      return;
    }
    const first = room.firstSeq();
    const held = first !== null && first <= Math.max(1, goal.seq - REVEAL_CONTEXT);
    if (held || room.historyDone || goal.pages >= REVEAL_MAX_PAGES) {
      this.revealing = null;
      this.host.revealed(room, goal.seq);
      return;
    }
    // Not joined or its first page not come yet: the answers call this again.
    if (!room.joined || !room.opened || room.historyQueue.length) return;
    goal.pages++;
    this.loadOlder(REVEAL_PAGE);
    if (!room.loadingOlder) this.#continueReveal(); // nothing to ask: the beginning is held
  }

  /**
   * Send the next unsent message of `roomName`, always with its own client_id, so a retry
   * is recognised by the server.
   */
  flushOutbox(roomName) {
    const room = this.chat.rooms.get(roomName);
    if (!room || !room.joined || this.outbox.isHeld(roomName)) return;
    const item = this.outbox.next(roomName);
    if (item && this.#ask(request.send(item))) this.outbox.sending(item);
    if (this.#isCurrent(room)) this.host.markDirty("pending");
  }

  /**
   * The shown room is in front of the person, scrolled to its end: what it holds is read.
   * Tells the server (a read frame) when the marker moves.
   */
  readCurrent() {
    const room = this.chat.currentRoom;
    if (!room || !room.joined || !this.host.canSeeCurrent()) return;
    if (!room.opened || room.historyQueue.includes("latest")) return; // nothing shown yet
    const had = room.unread;
    const seq = this.chat.markRead(room);
    if (seq !== null) this.#ask(request.read(room.name, seq));
    if (had || seq !== null) this.host.markDirty("rooms");
  }

  /** Edit, delete, react or set the topic: false when not sent (offline). */
  edit(room, target, text) {
    return this.#act(request.edit(room, target, text, this.newId()));
  }

  deleteMessage(room, target) {
    return this.#act(request.delete(room, target, this.newId()));
  }

  react(room, target, emoji, on) {
    return this.#act(request.react(room, target, emoji, on, this.newId()));
  }

  setTopic(room, topic) {
    return this.#act(request.topic(room, topic, this.newId()));
  }

  /** The person is typing in the shown room. */
  noteTyping() {
    const room = this.chat.currentRoom;
    if (!room || !room.joined) return;
    const now = this.host.now();
    if (now - room.lastTypingSent < TYPING_SEND_MS) return;
    if (this.#ask(request.typing(room.name))) room.lastTypingSent = now;
  }

  /** The socket closed: what lived on it is gone; messages on the wire go back in line. */
  socketClosed() {
    this.pending.clear(); // nothing asked on that socket will be answered
    this.actions.clear(); // an edit or reaction lost with it: the person can do it again
    for (const room of this.chat.rooms.values()) room.forgetSocket();
    this.outbox.requeue();
    this.host.markDirty("members");
    this.host.markDirty("header");
    this.host.markDirty("typing");
  }

  #act(frame) {
    const room = this.chat.rooms.get(frame.room);
    if (!room || !room.joined || !this.#ask(frame)) return false;
    this.actions.set(frame.client_id, frame);
    return true;
  }

  /** The session is over: no timer of it may fire. */
  stop() {
    for (const timers of [this.holdTimers, this.retryTimers]) {
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
    }
    for (const room of this.chat.rooms.values()) for (const timer of room.typing.values()) clearTimeout(timer);
  }

  // ----------------------------------------------------------------- helpers
  #isCurrent(room) {
    return room.name === this.chat.current;
  }

  /** Store a message; a message of ours that was waiting in the outbox is now delivered. */
  #store(room, m) {
    if (!room.store(m)) return false;
    if (m.client_id && m.username === this.chat.me) this.outbox.delivered(m.client_id);
    return true;
  }

  /**
   * A page filling a hole came. History holds messages only: the seqs of other events in it
   * never come, their effects are in the messages. A short page reached the present: every
   * seq still missing below what is held was such an event.
   */
  #filled(room, list) {
    if (room.seen === null) return;
    if (list.length >= HOLE_PAGE) room.skipTo(list.at(-1).seq);
    else room.skipTo(Math.max(room.highestMessageSeq(), ...room.events));
  }

  #memberChanged(room, ev) {
    if (!Array.isArray(room.members) || typeof ev.username !== "string") return;
    if (ev.change === "left" || ev.change === "removed") {
      room.members = room.members.filter((name) => name !== ev.username);
    } else if (!room.members.includes(ev.username)) {
      room.members = [...room.members, ev.username].sort();
    }
    if (this.#isCurrent(room)) this.host.markDirty("members");
  }

  /** Advance the contiguous resume point; a hole asks the server for what is missing. */
  #advanceSeen(room) {
    if (room.advanceSeen()) this.#askHistory(room, "after", request.after(room.name, room.seen, HOLE_PAGE));
  }

  /**
   * Send `frame` with a fresh request id; false when it could not be sent. `asked` (a join
   * or a history page) waits in `pending` for the answer that echoes the id.
   */
  #ask(frame, asked = null) {
    const id = ++this.lastId;
    const sent = this.host.send({ ...frame, id });
    if (sent && asked) this.pending.set(id, asked);
    return sent;
  }

  /** Ask for a page of `room`: "latest", "before" (older) or "after" (a hole, an ack's message). */
  #askHistory(room, page, frame) {
    room.historyQueue.push(page);
    this.#ask(frame, { kind: "history", room: room.name, page });
  }

  /**
   * What the request that `frame` answers asked (by the id it echoes), now answered; null
   * when it answers none that waits (no id, a send's or a typing frame's).
   */
  #answered(frame) {
    const asked = this.pending.get(frame.id);
    if (asked === undefined) return null;
    this.pending.delete(frame.id);
    return asked;
  }

  /** A page of `room` was answered or refused: it is no longer in flight. */
  #pageSettled(room, page) {
    const at = room.historyQueue.indexOf(page);
    if (at >= 0) room.historyQueue.splice(at, 1);
    if (page === "before") room.loadingOlder = false;
  }

  /** The server refused a join or a history page: forget it was asked, so it can be again. */
  #refused(asked, frame) {
    const room = this.chat.rooms.get(asked.room);
    if (!room) return;
    if (asked.kind === "join") {
      room.joining = null; // joinAll tries again (after a room list that still has it)
      return;
    }
    this.#pageSettled(room, asked.page);
    if (asked.page === "latest") {
      room.opened = false; // asked again when the room is next shown, or after a wait:
      if (frame.code === "rate_limited" || frame.code === "unavailable") this.#retryLatest(room, frame);
    }
    if (this.#isCurrent(room)) this.host.markDirty("logTop");
  }

  /** Ask again for the refused first page of `room` once the server may take it. */
  #retryLatest(room, frame) {
    clearTimeout(this.retryTimers.get(room.name));
    this.retryTimers.set(
      room.name,
      setTimeout(() => {
        this.retryTimers.delete(room.name);
        if (room.joined && !room.opened && this.chat.currentRoom === room) this.requestLatest(room);
      }, retryWait(frame) * 1000),
    );
  }

  #hold(item, ms) {
    this.outbox.hold(item, ms);
    clearTimeout(this.holdTimers.get(item.room));
    this.holdTimers.set(
      item.room,
      setTimeout(() => {
        this.holdTimers.delete(item.room);
        this.outbox.release(item.room);
        this.flushOutbox(item.room);
      }, ms),
    );
  }
}
