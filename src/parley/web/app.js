/* Parley browser client: the page's entry module. It holds the signed-in session and wires
 * the parts together: the socket (socket.mjs, backoff.mjs), the frames (frames.mjs), the
 * model (model.mjs), the outbox (outbox.mjs), the views (views.mjs) drawn by one scheduler
 * (scheduler.mjs), the sign-in view and the dialogs (forms.mjs), and the team features
 * (team.mjs: message actions, emoji, mentions, topic, members, DMs, notifications), the search
 * box (searchbox.mjs), the messages' markdown (markdown.mjs), files (uploads.mjs: the
 * composer's uploads; attachments.mjs and viewer.mjs: files in messages) and, for admins, the
 * admin page (adminpage.mjs). ES modules served as they are: no build step, no dependency.
 * Served by Parley under `Content-Security-Policy: default-src 'self'`: nothing inline, every
 * text rendered through textContent / text nodes, never innerHTML.
 *
 * See docs/web-client.md for the design (states, reconnect/resume, the outbox, the modules).
 */

import { bindAdmin, resetAdmin, setAdmin } from "./adminpage.mjs";
import { api } from "./api.mjs";
import * as forms from "./forms.mjs";
import { FrameHandler, parseFrame } from "./frames.mjs";
import { Chat, GENERAL, ROOM_REF_RE } from "./model.mjs";
import { Outbox } from "./outbox.mjs";
import { RenderScheduler } from "./scheduler.mjs";
import { bindSearch, resetSearch } from "./searchbox.mjs";
import { CLOSE_BANNED, Connection } from "./socket.mjs";
import * as team from "./team.mjs";
import { MAX_TEXT, codePoints } from "./text.mjs";
import { bindUploads, renderUploads, resetUploads, takeUploads, uploading } from "./uploads.mjs";
import { bindViewer, closeViewer } from "./viewer.mjs";
import * as view from "./views.mjs";

const { el, media } = view;
const ROOMS_REFRESH_MS = 30000; // look for rooms we were invited to
const SAVE_OUTBOX_MS = 1000; // a tab can be killed without `pagehide`: save soon after a change
const BANNED_NOTICE = "This account was banned by an admin: you can't sign in with it any more.";

// -------------------------------------------------------------- drawing
/** The next frame; a hidden tab gets none, and its title (the unread count) still changes. */
function nextFrame(callback) {
  if (document.visibilityState === "visible") requestAnimationFrame(callback);
  else setTimeout(callback, 0);
}

const scheduler = new RenderScheduler((parts) => {
  view.draw(parts);
  if (parts.has("members") || parts.has("log")) team.peopleChanged();
}, nextFrame);
const markDirty = (part, detail) => scheduler.markDirty(part, detail);

/** The shown room is in front of the person, scrolled to its end: what it holds is read. */
function canSeeCurrent() {
  return document.visibilityState === "visible" && !el.app.hidden && view.atBottom();
}

// -------------------------------------------------------------- session
/**
 * One signed-in session: its rooms, outbox, socket and frame handling. A new one at each
 * sign-in; whatever answers after it ended compares its session with `session` and stops.
 */
function createSession(me) {
  const session = { chat: null, outbox: null, connection: null, frames: null, roomsTimer: null, timers: {} };
  const chat = new Chat(me);
  session.chat = chat;
  session.outbox = new Outbox({
    onChange: () => {
      markDirty("pending");
      saveSoon(session, "outbox", SAVE_OUTBOX_MS, saveOutbox);
    },
  });
  session.connection = new Connection({
    url: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/chat",
    networkUp: () => navigator.onLine !== false,
    events: {
      frame: (data) => {
        const frame = parseFrame(data);
        if (frame) session.frames.handle(frame);
      },
      change: (changed) => {
        markDirty("conn");
        if (changed) markDirty("pending");
      },
      closed: () => session.frames.socketClosed(),
      signedOut: (code) => sessionEnded(code),
      refused: () => checkSessionStillValid(session),
    },
  });
  session.frames = new FrameHandler(chat, session.outbox, {
    send: (frame) => session.connection.send(frame),
    socketId: () => session.connection.openId,
    online: () => session.connection.state === "online",
    markDirty,
    canSeeCurrent,
    announce: view.announce,
    now: Date.now,
    hello(frame) {
      session.connection.greeted();
      if (typeof frame.username === "string" && frame.username !== chat.me) {
        chat.me = frame.username;
        markDirty("me");
      }
      if (typeof frame.admin === "boolean") noteRole(session, frame.admin);
    },
    roleChanged: (admin) => noteRole(session, admin),
    roomsChanged() {
      if (!chat.current || !chat.rooms.has(chat.current)) selectRoom(roomFromHash() || GENERAL, false);
    },
    refreshRooms: () => refreshRooms(session),
    refreshMembers: (room) => refreshMembers(room),
    alert: team.alertPerson,
    actionFailed: team.toast,
    removed: (room) => team.roomGone(room),
    revealed(room, seq) {
      scheduler.flush(); // the pages just loaded are drawn before the message is looked for
      team.jumpTo(room, seq);
    },
  });
  return session;
}

/** Signed out: nothing to show, nothing connected. */
let session = createSession(null);
view.bindState({
  get chat() {
    return session.chat;
  },
  get outbox() {
    return session.outbox;
  },
  get connection() {
    return session.connection;
  },
  canSeeCurrent,
  nearTop: maybeLoadOlder,
  logDrawn: () => session.frames.readCurrent(),
});

// -------------------------------------------------------------- storage
// Read markers live on the server (read frames). Unsent messages survive a reload of this
// tab: sessionStorage is per tab and goes with it. Saved when the page is hidden or left;
// on the next load they are sent again with the same client_id, so one that did reach the
// server is not stored twice.
function outboxKey(me) {
  return "parley.outbox." + (me || "").toLowerCase();
}

/** What was saved under `key`, or null. Storage may be off: even naming it can throw. */
function loadStored(storage, key) {
  try {
    return JSON.parse(storage().getItem(key) || "null");
  } catch {
    return null;
  }
}

function saveSoon(owner, name, ms, save) {
  if (owner.timers[name]) return;
  owner.timers[name] = setTimeout(() => {
    owner.timers[name] = null;
    if (owner === session) save(owner);
  }, ms);
}

function saveOutbox(owner) {
  if (!owner.chat.me) return;
  const items = owner.outbox.toJSON();
  try {
    if (items.length) sessionStorage.setItem(outboxKey(owner.chat.me), JSON.stringify(items));
    else sessionStorage.removeItem(outboxKey(owner.chat.me));
  } catch {
    /* private mode or full: unsent messages won't survive a reload */
  }
}

// ----------------------------------------------------------------- rooms
async function refreshRooms(owner = session) {
  try {
    const res = await api("GET", "/api/rooms");
    if (owner !== session) return;
    if (res.status === 200 && res.data && Array.isArray(res.data.rooms)) {
      owner.frames.roomList(res.data.rooms, true);
      // Messages restored after a reload for a room we no longer have are not sent later
      // behind the person's back (say, to a new room that takes the old name).
      owner.outbox.keepRooms((name) => owner.chat.rooms.has(name));
      markDirty("header");
    } else if (res.status === 401) {
      sessionEnded();
    }
  } catch {
    /* offline: the socket state tells the user */
  }
}

/** The members of `room` (the people panel, mention completion); general has none to list. */
async function refreshMembers(room) {
  if (room.name === GENERAL) return;
  const owner = session;
  try {
    const res = await api("GET", `/api/rooms/${encodeURIComponent(room.name)}/members`);
    if (owner !== session) return;
    if (res.status === 200 && res.data && Array.isArray(res.data.members)) {
      room.members = res.data.members.filter((m) => typeof m === "string");
      if (room.name === owner.chat.current) markDirty("members");
    }
  } catch {
    /* keep what we had */
  }
}

function hashName() {
  return decodeURIComponent(location.hash.replace(/^#\/?/, ""));
}

function roomFromHash() {
  const name = hashName();
  return ROOM_REF_RE.test(name) && session.chat.rooms.has(name) ? name : null;
}

function selectRoom(name, focusComposer) {
  const { chat, connection, frames } = session;
  const room = chat.rooms.get(name);
  if (!room) return;
  const previous = chat.currentRoom;
  if (previous && previous !== room) {
    previous.draft = el.input.value;
    previous.dividerSeq = null;
  }
  const changed = chat.current !== name;
  chat.current = name;
  if (changed) {
    // The "new messages" divider sits at the server's read marker; the log, once drawn
    // and seen to its end, moves the marker (logDrawn → readCurrent).
    room.placeDivider();
    room.dividerPending = !room.countsKnown;
    el.input.value = room.draft;
    view.updateCount();
    team.roomSwitched();
    closeViewer();
    renderUploads();
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  }
  if (connection.isOpen && room.joined && !room.opened) frames.requestLatest(room);
  for (const part of ["rooms", "header", "members", "typing", "pending"]) markDirty(part);
  markDirty("log", { reset: changed });
  view.closeSidebar();
  if (room.members === null) refreshMembers(room);
  if (focusComposer) el.input.focus();
}

/** Open room `name` at message `seq` (a search result): loaded up to it, then it flashes. */
function openMessage(name, seq) {
  const room = session.chat.rooms.get(name);
  if (!room) {
    team.toast("That room is no longer in your list.");
    return;
  }
  selectRoom(name, false);
  session.frames.reveal(room, seq);
}

function maybeLoadOlder() {
  if (view.nearTop()) session.frames.loadOlder();
}

// --------------------------------------------------------------- sending
function sendMessage() {
  const { chat, outbox, frames } = session;
  const room = chat.currentRoom;
  if (!room) return;
  const text = el.input.value;
  if (codePoints(text) > MAX_TEXT) {
    view.updateCount();
    el.input.focus();
    return;
  }
  if (uploading(room.name)) {
    team.toast("A file is still uploading: send once it is done.");
    return;
  }
  const files = takeUploads(room.name);
  if (!text.trim() && !files.length) return;
  const replyTo = room.replyTo && room.messages.has(room.replyTo) ? room.replyTo : null;
  outbox.add(room.name, text.trim() ? text : "", replyTo, files);
  el.input.value = "";
  room.draft = "";
  team.cancelReply();
  view.updateCount();
  frames.flushOutbox(room.name);
  markDirty("pending", { toBottom: true });
}

function retryItem(id) {
  const item = session.outbox.retry(id);
  if (item) session.frames.flushOutbox(item.room);
}

function discardItem(id) {
  session.outbox.discard(id);
  el.input.focus();
}

function noteTyping() {
  if (el.input.value.trim()) session.frames.noteTyping();
}

// ----------------------------------------------------------- session end
async function signOut() {
  const owner = session;
  try {
    await api("POST", "/api/logout");
  } catch {
    /* signed out locally anyway */
  }
  if (owner === session) stopApp("You signed out.");
}

/** A handshake that fails before `hello` may be a 401: ask /api/me. */
async function checkSessionStillValid(owner) {
  try {
    const res = await api("GET", "/api/me");
    if (owner === session && res.status === 401) sessionEnded();
  } catch {
    /* server unreachable: keep retrying */
  }
}

function sessionEnded(code) {
  stopApp(code === CLOSE_BANNED ? BANNED_NOTICE : forms.endNotice());
}

// ------------------------------------------------------------ admin page
/** The person's role (hello, /api/me): the admin page's link, and moderation in every room. */
function noteRole(owner, admin) {
  if (owner !== session) return;
  setAdmin(admin);
  if (owner.chat.admin === admin) return;
  owner.chat.admin = admin;
  for (const part of ["header", "members", "log"]) markDirty(part);
}

// The admin page replaces the chat (which stays connected); the log's scroll is kept for the way back.
let chatScroll = null;

function leaveChat() {
  chatScroll = { top: el.log.scrollTop, atBottom: view.atBottom() };
  view.closeSidebar();
}

function backToChat() {
  view.showView("app");
  if (!chatScroll || chatScroll.atBottom) view.scrollToBottom();
  else el.log.scrollTop = chatScroll.top;
  chatScroll = null;
  session.frames.readCurrent();
  (media.narrow.matches ? el.openSidebar : el.adminLink).focus(); // the link is in the closed drawer on a phone
}

// ------------------------------------------------------------- lifecycle
function startApp(username, admin = false) {
  session = createSession(username);
  noteRole(session, admin);
  const { chat, connection } = session;
  session.outbox.restore(loadStored(() => sessionStorage, outboxKey(username)));
  chat.ensureRoom(GENERAL);
  view.clearChat();
  markDirty("me");
  view.showView("app");
  const hashRoom = hashName(); // before selecting general rewrites it: opened once the room list has it
  selectRoom(roomFromHash() || GENERAL, false);
  connection.connect();
  const owner = session;
  refreshRooms(owner).then(() => {
    if (owner !== session) return;
    if (ROOM_REF_RE.test(hashRoom) && chat.rooms.has(hashRoom) && chat.current !== hashRoom) selectRoom(hashRoom, false);
  });
  session.roomsTimer = setInterval(() => {
    if (connection.state === "online") refreshRooms(owner);
  }, ROOMS_REFRESH_MS);
  view.fitMembers();
  if (media.finePointer.matches) el.input.focus();
}

function stopApp(notice) {
  const old = session;
  session = createSession(null);
  old.connection.stop();
  old.frames.stop();
  clearInterval(old.roomsTimer);
  for (const timer of Object.values(old.timers)) clearTimeout(timer);
  try {
    sessionStorage.removeItem(outboxKey(old.chat.me)); // signing out forgets what was not sent
  } catch {
    /* nothing was saved */
  }
  scheduler.clear();
  team.reset();
  resetSearch();
  closeViewer();
  resetUploads();
  resetAdmin();
  view.clearChat();
  forms.signedOut(notice);
}

async function boot() {
  if (!forms.useInviteLink()) forms.setAuthMode("login");
  let delay = 1000;
  for (;;) {
    try {
      const res = await api("GET", "/api/me");
      if (res.status === 200 && res.data && typeof res.data.username === "string") {
        startApp(res.data.username, res.data.admin === true);
      } else {
        forms.showAuth("");
      }
      return;
    } catch {
      el.bootText.textContent = "Can't reach Parley. Retrying…";
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }
}

// ---------------------------------------------------------------- events
forms.bindForms({ session: () => session, startApp, sessionEnded, selectRoom, refreshMembers });
team.bindTeam({
  session: () => session,
  selectRoom,
  markDirty,
  refreshMembers,
  refreshRooms: () => refreshRooms(session),
});
bindSearch({ session: () => session, openMessage });
bindUploads({
  currentRoom: () => session.chat.current,
  roomLabel: () => {
    const room = session.chat.currentRoom;
    return room ? (room.isDm ? "" : "#") + session.chat.label(room) : "";
  },
  toast: team.toast,
});
bindViewer({ session: () => session });
bindAdmin({
  session: () => session,
  sessionEnded,
  confirm: team.confirmInPage,
  toast: team.toast,
  leaveChat,
  backToChat,
  roleChanged: (admin) => noteRole(session, admin),
});
el.signOut.addEventListener("click", signOut);

function onRoomClick(event) {
  const btn = event.target.closest("button[data-room]");
  // Focus the composer for keyboard and mouse users, not on touch (no surprise keyboard).
  const keyboard = event.detail === 0;
  if (btn) selectRoom(btn.dataset.room, keyboard || media.finePointer.matches);
}

/** ↑/↓ move between the rooms and DMs of the sidebar. */
function onRoomKey(event) {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const buttons = [...el.sidebar.querySelectorAll("button[data-room]")];
  const i = buttons.indexOf(document.activeElement);
  if (i < 0) return;
  event.preventDefault();
  const next = buttons[(i + (event.key === "ArrowDown" ? 1 : buttons.length - 1)) % buttons.length];
  next.focus();
}

for (const list of [el.roomList, el.dmList]) {
  list.addEventListener("click", onRoomClick);
  list.addEventListener("keydown", onRoomKey);
}

el.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
el.input.addEventListener("keydown", (event) => {
  if (team.composerKeydown(event)) return;
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
    event.preventDefault();
    sendMessage();
  }
});
el.input.addEventListener("input", () => {
  view.updateCount();
  noteTyping();
  team.composerInput();
});

el.pending.addEventListener("click", (event) => {
  const btn = event.target.closest("button[data-action]");
  const li = event.target.closest("li[data-client-id]");
  if (!btn || !li) return;
  if (btn.dataset.action === "retry") retryItem(li.dataset.clientId);
  else if (btn.dataset.action === "discard") discardItem(li.dataset.clientId);
});

el.log.addEventListener(
  "scroll",
  () => {
    maybeLoadOlder();
    if (view.atBottom()) {
      el.jump.hidden = true;
      session.frames.readCurrent();
    }
  },
  { passive: true },
);
el.jump.addEventListener("click", () => {
  view.scrollToBottom();
  el.input.focus();
});

el.retryNow.addEventListener("click", () => session.connection.retryNow());
el.openSidebar.addEventListener("click", view.openSidebar);
el.closeSidebar.addEventListener("click", () => {
  view.closeSidebar();
  el.openSidebar.focus();
});
el.scrim.addEventListener("click", () => {
  view.closeSidebar();
  view.closeMembers();
});
el.membersBtn.addEventListener("click", view.toggleMembers);
el.closeMembers.addEventListener("click", () => {
  view.closeMembers();
  el.membersBtn.focus();
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    if (el.app.classList.contains("sidebar-open")) {
      view.closeSidebar();
      el.openSidebar.focus();
    } else if (el.app.classList.contains("members-open") && !media.wideMembers.matches) {
      view.closeMembers();
      el.membersBtn.focus();
    }
  }
  // Alt+↑ / Alt+↓: previous / next room from anywhere.
  if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown") && !el.app.hidden) {
    const names = session.chat.sidebarOrder().map((r) => r.name);
    const i = names.indexOf(session.chat.current || "");
    if (i < 0 || names.length < 2) return;
    event.preventDefault();
    selectRoom(names[(i + (event.key === "ArrowDown" ? 1 : names.length - 1)) % names.length], true);
  }
});

window.addEventListener("hashchange", () => {
  const name = roomFromHash();
  if (name && name !== session.chat.current) selectRoom(name, false);
});
window.addEventListener("online", () => {
  if (!el.app.hidden) session.connection.retryNow();
});
window.addEventListener("offline", () => {
  if (!el.app.hidden) session.connection.goOffline();
});
window.addEventListener("pagehide", () => saveOutbox(session));
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    saveOutbox(session);
    scheduler.flush(); // no frame comes while hidden: draw what waited for one
  }
  if (el.app.hidden || document.visibilityState !== "visible") return;
  const { connection } = session;
  session.frames.readCurrent();
  team.renderNotifyButton();
  markDirty("rooms");
  // Coming back to the tab: don't make the person wait out a long backoff.
  connection.hurry();
  if (connection.state === "online") refreshRooms();
});
media.narrow.addEventListener("change", () => view.closeSidebar());
media.wideMembers.addEventListener("change", view.fitMembers);

boot();
