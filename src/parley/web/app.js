/* Parley browser client: the page's entry module. It wires the parts together: the socket
 * (socket.mjs), the frames (frames.mjs), the model (model.mjs), the outbox (outbox.mjs), the
 * views (views.mjs), drawn by one scheduler (scheduler.mjs); and runs the sign-in and the
 * dialogs. ES modules served as they are: no build step, no dependency. Served by Parley
 * under `Content-Security-Policy: default-src 'self'`: nothing inline, every text rendered
 * through textContent / text nodes, never innerHTML.
 *
 * See docs/web-client.md for the design (states, reconnect/resume, the outbox).
 */

import { api, errorMessage, retryAfterSeconds } from "./api.mjs";
import { FrameHandler, parseFrame } from "./frames.mjs";
import { Chat, GENERAL, ROOM_RE, ReadMarks, USER_RE } from "./model.mjs";
import { Outbox } from "./outbox.mjs";
import { RenderScheduler } from "./scheduler.mjs";
import { Connection } from "./socket.mjs";
import { MAX_TEXT, codePoints } from "./text.mjs";
import * as view from "./views.mjs";

const { el, media } = view;
const ROOMS_REFRESH_MS = 30000; // look for rooms we were invited to
const SAVE_MARKS_MS = 500;
const SAVE_OUTBOX_MS = 1000; // a tab can be killed without `pagehide`: save soon after a change

// -------------------------------------------------------------- drawing
/** The next frame; a hidden tab gets none, and its title (the unread count) still changes. */
function nextFrame(callback) {
  if (document.visibilityState === "visible") requestAnimationFrame(callback);
  else setTimeout(callback, 0);
}

const scheduler = new RenderScheduler(view.draw, nextFrame);
const markDirty = (part, detail) => scheduler.markDirty(part, detail);

function canSeeCurrent() {
  return document.visibilityState === "visible" && !el.app.hidden;
}

// -------------------------------------------------------------- session
/**
 * One signed-in session: its rooms, outbox, socket and frame handling. A new one at each
 * sign-in; whatever answers after it ended compares its session with `session` and stops.
 */
function createSession(me) {
  const chat = new Chat(me);
  const session = { chat, outbox: null, connection: null, frames: null, roomsTimer: null, timers: {} };
  chat.marks = new ReadMarks(loadStored(localStorage, readKey(me)), () => {
    markDirty("rooms");
    saveSoon(session, "marks", SAVE_MARKS_MS, saveReadMarks);
  });
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
      signedOut: () => sessionEnded(),
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
    },
    roomsChanged() {
      if (!chat.current || !chat.rooms.has(chat.current)) selectRoom(roomFromHash() || GENERAL, false);
    },
    refreshRooms: () => refreshRooms(session),
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
});

// -------------------------------------------------------------- storage
// Read marks are kept per user in localStorage. Unsent messages survive a reload of this
// tab: sessionStorage is per tab and goes with it. Saved when the page is hidden or left;
// on the next load they are sent again with the same client_id, so one that did reach the
// server is not stored twice.
function readKey(me) {
  return "parley.read." + (me || "").toLowerCase();
}

function outboxKey(me) {
  return "parley.outbox." + (me || "").toLowerCase();
}

function loadStored(storage, key) {
  try {
    return JSON.parse(storage.getItem(key) || "null");
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

function saveReadMarks(owner) {
  try {
    if (owner.chat.me) localStorage.setItem(readKey(owner.chat.me), JSON.stringify(owner.chat.marks));
  } catch {
    /* private mode: unread counts just won't survive a reload */
  }
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

async function refreshMembers(room) {
  if (!room.private) return;
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
  return ROOM_RE.test(name) && session.chat.rooms.has(name) ? name : null;
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
    const mark = chat.readSeq(room);
    room.dividerSeq = room.lastSeq > mark ? mark : null;
    el.input.value = room.draft;
    view.updateCount();
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  }
  if (connection.isOpen && room.joined && !room.opened) frames.requestLatest(room);
  if (canSeeCurrent()) chat.markRead(room);
  for (const part of ["rooms", "header", "members", "typing", "pending"]) markDirty(part);
  markDirty("log", { reset: changed });
  view.closeSidebar();
  if (room.private && room.members === null) refreshMembers(room);
  if (focusComposer) el.input.focus();
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
  if (!text.trim()) return;
  if (codePoints(text) > MAX_TEXT) {
    view.updateCount();
    el.input.focus();
    return;
  }
  outbox.add(room.name, text);
  el.input.value = "";
  room.draft = "";
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

// ------------------------------------------------------------------ auth
let authMode = "login"; // or "register"
let authBusy = false;
let endingNotice = ""; // why the session is about to end, when we ended it ourselves

function setAuthMode(mode) {
  authMode = mode;
  const register = mode === "register";
  el.authTitle.textContent = register ? "Create your account" : "Sign in";
  el.authSubmit.textContent = register ? "Create account" : "Sign in";
  el.authSwitchText.textContent = register ? "Already have an account?" : "New to Parley?";
  el.authSwitch.textContent = register ? "Sign in" : "Create an account";
  el.authPass.autocomplete = register ? "new-password" : "current-password";
  el.authUserHint.hidden = !register;
  el.authPassHint.hidden = !register;
  setAuthError("");
}

function setAuthError(text, field) {
  el.authError.textContent = text;
  for (const input of [el.authUser, el.authPass]) input.removeAttribute("aria-invalid");
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

function showAuth(notice) {
  view.showView("auth");
  el.authNotice.hidden = !notice;
  el.authNotice.textContent = notice || "";
  el.authPass.value = "";
  setAuthError("");
  el.authUser.focus();
}

async function submitAuth(event) {
  event.preventDefault();
  if (authBusy) return;
  const username = el.authUser.value.trim();
  const password = el.authPass.value;
  if (!USER_RE.test(username)) {
    setAuthError(username ? "Usernames use 1–32 letters, digits, “_”, “.” or “-”." : "Enter your username.", el.authUser);
    return;
  }
  if (authMode === "register" ? password.length < 8 : !password) {
    setAuthError(authMode === "register" ? "Use a password of at least 8 characters." : "Enter your password.", el.authPass);
    return;
  }
  authBusy = true;
  el.authSubmit.disabled = true;
  el.authForm.setAttribute("aria-busy", "true");
  setAuthError("");
  try {
    const path = authMode === "register" ? "/api/register" : "/api/login";
    const res = await api("POST", path, { username, password });
    if (res.status === 200 || res.status === 201) {
      // The token in the body is deliberately ignored: the HttpOnly cookie carries the session.
      el.authPass.value = "";
      el.authNotice.hidden = true;
      startApp((res.data && res.data.username) || username);
    } else if (res.status === 409) {
      setAuthError(`The name “${username}” is taken. Pick another one.`, el.authUser);
    } else if (res.status === 401) {
      setAuthError("Wrong username or password.", el.authPass);
    } else if (res.status === 429) {
      const wait = retryAfterSeconds(res);
      setAuthError(`Too many attempts. Try again in ${wait} s.`);
    } else if (res.status === 400) {
      setAuthError(errorMessage(res, "Check your username and password."));
    } else {
      setAuthError(errorMessage(res, `The server answered ${res.status}. Try again.`));
    }
  } catch {
    setAuthError("Can't reach Parley. Check your connection and try again.");
  } finally {
    authBusy = false;
    el.authSubmit.disabled = false;
    el.authForm.removeAttribute("aria-busy");
  }
}

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

function sessionEnded() {
  stopApp(endingNotice || "Your session ended. Sign in again.");
}

// --------------------------------------------------------------- dialogs
function openRoomDialog() {
  el.roomForm.reset();
  el.roomError.textContent = "";
  el.roomNameInput.removeAttribute("aria-invalid");
  el.roomDialog.showModal();
  el.roomNameInput.focus();
}

async function submitRoom(event) {
  event.preventDefault();
  const name = el.roomNameInput.value.trim().toLowerCase();
  const isPrivate = el.roomPrivate.checked;
  if (!ROOM_RE.test(name)) {
    el.roomError.textContent = "Use 1–64 lowercase letters, digits, “-” or “_”.";
    el.roomNameInput.setAttribute("aria-invalid", "true");
    el.roomNameInput.focus();
    return;
  }
  try {
    const res = await api("POST", "/api/rooms", { room: name, private: isPrivate });
    const { chat, frames } = session;
    if (res.status === 201 || res.status === 200) {
      const room = chat.ensureRoom(name);
      room.private = isPrivate;
      room.owner = chat.me;
      room.known = true;
      chat.marks.advance(name, 0); // a new room: all of it is unread (none yet)
      if (isPrivate) room.members = chat.me ? [chat.me] : [];
      el.roomDialog.close();
      frames.joinAll();
      selectRoom(name, true);
      if (isPrivate) refreshMembers(room);
    } else if (res.status === 409) {
      el.roomError.textContent = `A room named “${name}” already exists.`;
      el.roomNameInput.setAttribute("aria-invalid", "true");
      el.roomNameInput.focus();
    } else if (res.status === 401) {
      el.roomDialog.close();
      sessionEnded();
    } else {
      el.roomError.textContent = errorMessage(res, `Could not create the room (${res.status}).`);
    }
  } catch {
    el.roomError.textContent = "Can't reach Parley right now. Try again in a moment.";
  }
}

function openInviteDialog() {
  const room = session.chat.currentRoom;
  if (!room) return;
  el.inviteForm.reset();
  el.inviteRoom.textContent = room.name;
  el.inviteError.textContent = "";
  el.inviteOk.textContent = "";
  el.inviteDialog.showModal();
  el.inviteName.focus();
}

async function submitInvite(event) {
  event.preventDefault();
  const room = session.chat.currentRoom;
  if (!room) return;
  const username = el.inviteName.value.trim();
  el.inviteOk.textContent = "";
  el.inviteError.textContent = "";
  if (!USER_RE.test(username)) {
    el.inviteError.textContent = "Enter a username.";
    el.inviteName.focus();
    return;
  }
  try {
    const res = await api("POST", `/api/rooms/${encodeURIComponent(room.name)}/members`, { username });
    if (res.status === 201 || res.status === 200 || res.status === 204) {
      el.inviteOk.textContent = `${username} can now see #${room.name}.`;
      el.inviteName.value = "";
      el.inviteName.focus();
      refreshMembers(room);
    } else if (res.status === 404) {
      el.inviteError.textContent = errorMessage(res, `There is no user named “${username}”.`);
    } else if (res.status === 401) {
      el.inviteDialog.close();
      sessionEnded();
    } else {
      el.inviteError.textContent = errorMessage(res, `Could not invite ${username} (${res.status}).`);
    }
  } catch {
    el.inviteError.textContent = "Can't reach Parley right now. Try again in a moment.";
  }
}

// ---------------------------------------------- account: password and sessions
function openAccountDialog() {
  el.passwordForm.reset();
  el.passwordUser.value = session.chat.me || ""; // lets a password manager file the new password
  for (const node of [el.passwordError, el.passwordOk, el.sessionsError]) node.textContent = "";
  setPasswordError("");
  el.accountDialog.showModal();
  el.passwordOld.focus();
}

function setPasswordError(text, field) {
  el.passwordError.textContent = text;
  for (const input of [el.passwordOld, el.passwordNew, el.passwordRepeat]) input.removeAttribute("aria-invalid");
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

async function submitPassword(event) {
  event.preventDefault();
  if (el.passwordSubmit.disabled) return;
  const old = el.passwordOld.value;
  const fresh = el.passwordNew.value;
  el.passwordOk.textContent = "";
  if (!old) return setPasswordError("Enter your current password.", el.passwordOld);
  if (fresh.length < 8) return setPasswordError("Use a new password of at least 8 characters.", el.passwordNew);
  if (fresh !== el.passwordRepeat.value) return setPasswordError("The two new passwords differ.", el.passwordRepeat);
  setPasswordError("");
  el.passwordSubmit.disabled = true;
  try {
    const res = await api("POST", "/api/password", { old, new: fresh });
    if (res.status === 204) {
      el.passwordForm.reset();
      el.passwordUser.value = session.chat.me || "";
      el.passwordOk.textContent = "Password changed. Every other session was signed out.";
    } else if (res.status === 403) {
      setPasswordError("That is not your current password.", el.passwordOld);
    } else if (res.status === 429) {
      setPasswordError(`Too many attempts. Try again in ${retryAfterSeconds(res)} s.`);
    } else if (res.status === 401) {
      el.accountDialog.close();
      sessionEnded();
    } else {
      setPasswordError(errorMessage(res, `Could not change the password (${res.status}).`));
    }
  } catch {
    setPasswordError("Can't reach Parley right now. Try again in a moment.");
  } finally {
    el.passwordSubmit.disabled = false;
  }
}

async function signOutEverywhere() {
  if (el.everywhere.disabled) return;
  const owner = session;
  el.sessionsError.textContent = "";
  el.everywhere.disabled = true;
  // Our own socket is closed with CLOSE_SIGNED_OUT too, maybe before the answer arrives.
  endingNotice = "You signed out everywhere.";
  try {
    const res = await api("DELETE", "/api/sessions");
    if (res.status === 204 || res.status === 401) {
      if (owner === session) sessionEnded();
      return;
    }
    el.sessionsError.textContent = errorMessage(res, `Could not sign out everywhere (${res.status}).`);
  } catch {
    el.sessionsError.textContent = "Can't reach Parley right now. Try again in a moment.";
  } finally {
    if (owner === session) endingNotice = "";
    el.everywhere.disabled = false;
  }
}

// ------------------------------------------------------------- lifecycle
function startApp(username) {
  session = createSession(username);
  const { chat, connection } = session;
  session.outbox.restore(loadStored(sessionStorage, outboxKey(username)));
  chat.ensureRoom(GENERAL);
  view.clearChat();
  markDirty("me");
  view.showView("app");
  selectRoom(roomFromHash() || GENERAL, false);
  connection.connect();
  const hashRoom = hashName();
  const owner = session;
  refreshRooms(owner).then(() => {
    if (owner !== session) return;
    if (ROOM_RE.test(hashRoom) && chat.rooms.has(hashRoom) && chat.current !== hashRoom) selectRoom(hashRoom, false);
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
  old.outbox = new Outbox();
  saveOutbox(old); // signing out forgets what was not sent
  scheduler.clear();
  view.clearChat();
  for (const dialog of [el.roomDialog, el.inviteDialog, el.accountDialog]) if (dialog.open) dialog.close();
  endingNotice = "";
  setAuthMode("login");
  showAuth(notice);
}

async function boot() {
  setAuthMode("login");
  let delay = 1000;
  for (;;) {
    try {
      const res = await api("GET", "/api/me");
      if (res.status === 200 && res.data && typeof res.data.username === "string") {
        startApp(res.data.username);
      } else {
        showAuth("");
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
el.authForm.addEventListener("submit", submitAuth);
el.authSwitch.addEventListener("click", () => {
  setAuthMode(authMode === "login" ? "register" : "login");
  el.authUser.focus();
});
el.signOut.addEventListener("click", signOut);

el.roomList.addEventListener("click", (event) => {
  const btn = event.target.closest("button[data-room]");
  // Focus the composer for keyboard and mouse users, not on touch (no surprise keyboard).
  const keyboard = event.detail === 0;
  if (btn) selectRoom(btn.dataset.room, keyboard || media.finePointer.matches);
});
el.roomList.addEventListener("keydown", (event) => {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const buttons = [...el.roomList.querySelectorAll("button[data-room]")];
  const i = buttons.indexOf(document.activeElement);
  if (i < 0) return;
  event.preventDefault();
  const next = buttons[(i + (event.key === "ArrowDown" ? 1 : buttons.length - 1)) % buttons.length];
  next.focus();
});

el.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
el.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
    event.preventDefault();
    sendMessage();
  }
});
el.input.addEventListener("input", () => {
  view.updateCount();
  noteTyping();
});

el.pending.addEventListener("click", (event) => {
  const btn = event.target.closest("button[data-action]");
  const li = event.target.closest("li[data-client-id]");
  if (!btn || !li) return;
  if (btn.dataset.action === "retry") retryItem(li.dataset.clientId);
  else discardItem(li.dataset.clientId);
});

el.log.addEventListener(
  "scroll",
  () => {
    maybeLoadOlder();
    if (view.atBottom()) el.jump.hidden = true;
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
el.newRoom.addEventListener("click", openRoomDialog);
el.roomForm.addEventListener("submit", submitRoom);
el.roomNameInput.addEventListener("input", () => {
  // Room names are lowercase with dashes: help instead of refusing.
  const fixed = el.roomNameInput.value.toLowerCase().replace(/\s+/g, "-");
  if (fixed !== el.roomNameInput.value) el.roomNameInput.value = fixed;
});
el.inviteBtn.addEventListener("click", openInviteDialog);
el.inviteForm.addEventListener("submit", submitInvite);
el.accountBtn.addEventListener("click", openAccountDialog);
el.passwordForm.addEventListener("submit", submitPassword);
el.everywhere.addEventListener("click", signOutEverywhere);
for (const dialog of [el.roomDialog, el.inviteDialog, el.accountDialog]) {
  dialog.addEventListener("click", (event) => {
    if (event.target.closest("[data-close]") || event.target === dialog) dialog.close();
  });
}

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
    const names = session.chat.sortedRooms().map((r) => r.name);
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
  const { chat, connection } = session;
  const room = chat.currentRoom;
  if (room) chat.markRead(room);
  markDirty("rooms");
  // Coming back to the tab: don't make the person wait out a long backoff.
  connection.hurry();
  if (connection.state === "online") refreshRooms();
});
media.narrow.addEventListener("change", () => view.closeSidebar());
media.wideMembers.addEventListener("change", view.fitMembers);

boot();
