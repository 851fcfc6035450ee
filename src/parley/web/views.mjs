/* The views: everything that touches the DOM. `draw` draws the parts the scheduler marked,
 * from the state it is given; nothing here changes that state. Every text goes in through
 * textContent or text nodes, never innerHTML. */

import { attachmentList } from "./attachments.mjs";
import { h, icon } from "./dom.mjs";
import { messageSummary } from "./files.mjs";
import { parse, plainText, render } from "./markdown.mjs";
import { mentions } from "./model.mjs";
import { MAX_TEXT, clip, codePoints } from "./text.mjs";

const GROUP_GAP_MS = 5 * 60 * 1000; // same sender within 5 min: one group
const AVATAR_COLORS = 11; // a prime spreads names better
const ANNOUNCE_MS = 400; // a burst of messages within this becomes one announcement
const LOAD_OLDER_PX = 400; // start loading older history this close to the top

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
export const el = {
  boot: $("boot-view"),
  bootText: $("boot-text"),
  auth: $("auth-view"),
  authForm: /** @type {HTMLFormElement} */ ($("auth-form")),
  authTitle: $("auth-title"),
  authNotice: $("auth-notice"),
  authUser: /** @type {HTMLInputElement} */ ($("auth-username")),
  authPass: /** @type {HTMLInputElement} */ ($("auth-password")),
  authUserHint: $("auth-username-hint"),
  authPassHint: $("auth-password-hint"),
  authInviteField: $("auth-invite-field"),
  authInvite: /** @type {HTMLInputElement} */ ($("auth-invite")),
  authError: $("auth-error"),
  authSubmit: /** @type {HTMLButtonElement} */ ($("auth-submit")),
  authSwitch: $("auth-switch"),
  authSwitchText: $("auth-switch-text"),
  app: $("app-view"),
  adminView: $("admin-view"),
  adminLink: $("admin-link"),
  sidebar: $("sidebar"),
  scrim: $("scrim"),
  openSidebar: $("open-sidebar"),
  closeSidebar: $("close-sidebar"),
  menuDot: $("menu-dot"),
  roomList: $("room-list"),
  dmList: $("dm-list"),
  newDm: $("new-dm"),
  notifyBtn: $("notify-btn"),
  newRoom: $("new-room"),
  meAvatar: $("me-avatar"),
  meName: $("me-name"),
  meState: $("me-state"),
  signOut: $("sign-out"),
  roomIcon: $("room-icon"),
  roomName: $("room-name"),
  roomSub: $("room-sub"),
  roomTopic: $("room-topic"),
  topicBtn: $("topic-btn"),
  topicForm: /** @type {HTMLFormElement} */ ($("topic-form")),
  topicInput: /** @type {HTMLInputElement} */ ($("topic-input")),
  topicCancel: $("topic-cancel"),
  leaveBtn: $("leave-btn"),
  replyBar: $("reply-bar"),
  replyText: $("reply-text"),
  replyCancel: $("reply-cancel"),
  mentionList: $("mention-list"),
  emojiBtn: $("emoji-btn"),
  picker: $("picker"),
  pickerSearch: /** @type {HTMLInputElement} */ ($("picker-search")),
  pickerBody: $("picker-body"),
  toast: $("toast"),
  dmDialog: /** @type {HTMLDialogElement} */ ($("dm-dialog")),
  dmForm: /** @type {HTMLFormElement} */ ($("dm-form")),
  dmName: /** @type {HTMLInputElement} */ ($("dm-name")),
  dmError: $("dm-error"),
  confirmDialog: /** @type {HTMLDialogElement} */ ($("confirm-dialog")),
  confirmForm: /** @type {HTMLFormElement} */ ($("confirm-form")),
  confirmTitle: $("confirm-title"),
  confirmText: $("confirm-text"),
  confirmOk: $("confirm-ok"),
  conn: $("conn"),
  connText: $("conn-text"),
  inviteBtn: $("invite-btn"),
  membersBtn: $("members-btn"),
  membersCount: $("members-count"),
  membersPanel: $("members-panel"),
  closeMembers: $("close-members"),
  membersTitle: $("members-title"),
  onlineList: $("online-list"),
  offlineTitle: $("offline-title"),
  offlineList: $("offline-list"),
  banner: $("banner"),
  bannerText: $("banner-text"),
  retryNow: $("retry-now"),
  log: $("log"),
  logTop: $("log-top"),
  messages: $("messages"),
  pending: $("pending"),
  jump: $("jump"),
  jumpText: $("jump-text"),
  typing: $("typing"),
  composer: /** @type {HTMLFormElement} */ ($("composer")),
  input: /** @type {HTMLTextAreaElement} */ ($("composer-input")),
  inputLabel: $("composer-label"),
  count: $("composer-count"),
  announcer: $("announcer"),
  roomDialog: /** @type {HTMLDialogElement} */ ($("room-dialog")),
  roomForm: /** @type {HTMLFormElement} */ ($("room-form")),
  roomNameInput: /** @type {HTMLInputElement} */ ($("room-name-input")),
  roomPrivate: /** @type {HTMLInputElement} */ ($("room-private")),
  roomError: $("room-error"),
  inviteDialog: /** @type {HTMLDialogElement} */ ($("invite-dialog")),
  inviteForm: /** @type {HTMLFormElement} */ ($("invite-form")),
  inviteRoom: $("invite-room"),
  inviteName: /** @type {HTMLInputElement} */ ($("invite-name")),
  inviteError: $("invite-error"),
  inviteOk: $("invite-ok"),
  accountBtn: $("account-btn"),
  accountDialog: /** @type {HTMLDialogElement} */ ($("account-dialog")),
  passwordForm: /** @type {HTMLFormElement} */ ($("password-form")),
  passwordUser: /** @type {HTMLInputElement} */ ($("password-username")),
  passwordOld: /** @type {HTMLInputElement} */ ($("password-old")),
  passwordNew: /** @type {HTMLInputElement} */ ($("password-new")),
  passwordRepeat: /** @type {HTMLInputElement} */ ($("password-repeat")),
  passwordError: $("password-error"),
  passwordOk: $("password-ok"),
  passwordSubmit: /** @type {HTMLButtonElement} */ ($("password-submit")),
  everywhere: /** @type {HTMLButtonElement} */ ($("sign-out-everywhere")),
  sessionsError: $("sessions-error"),
  searchBtn: $("search-btn"),
  searchDialog: /** @type {HTMLDialogElement} */ ($("search-dialog")),
  searchInput: /** @type {HTMLInputElement} */ ($("search-input")),
  searchClose: $("search-close"),
  searchStatus: $("search-status"),
  searchResults: $("search-results"),
  chat: $("chat"),
  attachBtn: $("attach-btn"),
  fileInput: /** @type {HTMLInputElement} */ ($("file-input")),
  uploads: $("uploads"),
  dropZone: $("drop-zone"),
  dropRoom: $("drop-room"),
  viewer: /** @type {HTMLDialogElement} */ ($("viewer")),
  viewerName: $("viewer-name"),
  viewerMeta: $("viewer-meta"),
  viewerCount: $("viewer-count"),
  viewerDownload: /** @type {HTMLAnchorElement} */ ($("viewer-download")),
  viewerClose: $("viewer-close"),
  viewerStage: $("viewer-stage"),
  viewerImg: /** @type {HTMLImageElement} */ ($("viewer-img")),
  viewerPrev: /** @type {HTMLButtonElement} */ ($("viewer-prev")),
  viewerNext: /** @type {HTMLButtonElement} */ ($("viewer-next")),
};

export const media = {
  narrow: window.matchMedia("(max-width: 767px)"),
  finePointer: window.matchMedia("(pointer: fine)"),
  wideMembers: window.matchMedia("(min-width: 1100px)"),
  reducedMotion: window.matchMedia("(prefers-reduced-motion: reduce)"),
};

/**
 * What the person is doing with the messages, kept across redraws: the message being edited
 * (with its unsaved text) and the one whose actions a long-press opened.
 */
export const ui = { editing: null, toolsOpen: null };

/**
 * The state the views draw, set by the page: {chat, outbox, connection, canSeeCurrent(),
 * nearTop(), logDrawn()} (nearTop: the log is scrolled close to its top; older history may be
 * wanted; logDrawn: the log was drawn, what is in view may now be read).
 */
let state = null;
export function bindState(s) {
  state = s;
}

/** Draw the parts the scheduler marked; in this order, since later ones read earlier ones. */
export function draw(parts) {
  const order = ["me", "conn", "rooms", "header", "members", "typing", "log", "logTop", "pending"];
  if (parts.has("members") && !parts.has("header")) parts.set("header", {}); // "N online"
  for (const part of order) {
    if (parts.has(part)) DRAW[part](parts.get(part));
  }
  // After the log moved (a short page, a tall screen): maybe ask for older history.
  if (parts.has("nearTop")) requestAnimationFrame(() => state.nearTop());
  if (parts.has("log") || parts.has("pending")) state.logDrawn();
}

const DRAW = {
  me: renderMe,
  conn: renderConn,
  rooms: renderRooms,
  header: renderHeader,
  members: renderMembers,
  typing: renderTyping,
  log: renderLog,
  logTop: renderLogTop,
  pending: renderPending,
};

// ------------------------------------------------------------------- helpers

function avatarClass(name) {
  let hash = 0;
  for (const ch of name.toLowerCase()) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return "av-" + (hash % AVATAR_COLORS);
}

export function avatar(name, extra) {
  const node = h("span", "avatar " + avatarClass(name) + (extra ? " " + extra : ""));
  node.textContent = (Array.from(name)[0] || "?").toUpperCase();
  node.setAttribute("aria-hidden", "true");
  return node;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "long", day: "numeric" });

function dayKey(d) {
  return d.getFullYear() + "-" + d.getMonth() + "-" + d.getDate();
}

function dayLabel(d) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(d) === dayKey(today)) return "Today";
  if (dayKey(d) === dayKey(yesterday)) return "Yesterday";
  return (d.getFullYear() === today.getFullYear() ? dayFmt : dayYearFmt).format(d);
}

/**
 * Append the message `text` to `parent` as DOM nodes: its markdown (markdown.mjs: links
 * built with the DOM API, http, https and mailto only), and "@name" for a name in
 * `mentioned` a highlighted span (`me`: more so).
 */
function appendRichText(parent, text, mentioned = [], me = null) {
  parent.append(render(parse(text), document, (node, plain) => appendMentions(node, plain, mentioned, me)));
}

const MENTION_RE = /@([A-Za-z0-9_.-]+)/g;

function appendMentions(parent, text, mentioned, me) {
  const names = new Set(mentioned.map((n) => n.toLowerCase()));
  let last = 0;
  for (const match of names.size ? text.matchAll(MENTION_RE) : []) {
    const name = match[1].replace(/[.-]+$/, "");
    if (!names.has(name.toLowerCase())) continue;
    const start = match.index ?? 0;
    if (start > last) parent.append(document.createTextNode(text.slice(last, start)));
    const isMe = Boolean(me) && name.toLowerCase() === me.toLowerCase();
    parent.append(h("span", "mention" + (isMe ? " mention-me" : ""), "@" + name));
    last = start + 1 + name.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

let announceQueue = [];
let announceTimer = null;
/** Coalesce bursts (a resume can deliver many messages at once) into one announcement. */
export function announce(text) {
  announceQueue.push(text);
  if (announceTimer) return;
  announceTimer = setTimeout(() => {
    const items = announceQueue;
    announceQueue = [];
    announceTimer = null;
    el.announcer.textContent =
      items.length === 1 ? items[0] : `${items.length} new messages. Latest: ${items[items.length - 1]}`;
  }, ANNOUNCE_MS);
}

// ------------------------------------------------------------- views, forms
export function showView(name) {
  el.boot.hidden = name !== "boot";
  el.auth.hidden = name !== "auth";
  el.app.hidden = name !== "app";
  el.adminView.hidden = name !== "admin";
}

/** The composer's counter: shown near the limit, and how far over it. */
export function updateCount() {
  const n = codePoints(el.input.value);
  if (n > MAX_TEXT) {
    el.count.textContent = `${n - MAX_TEXT} characters too long`;
    el.count.className = "count over";
  } else if (n > MAX_TEXT - 200) {
    el.count.textContent = `${MAX_TEXT - n} characters left`;
    el.count.className = "count";
  } else {
    el.count.textContent = "";
    el.count.className = "count";
  }
}

/** The chat view emptied at sign-out. */
export function clearChat() {
  el.messages.replaceChildren();
  el.pending.replaceChildren();
  el.roomList.replaceChildren();
  el.dmList.replaceChildren();
  el.input.value = "";
  ui.editing = null;
  ui.toolsOpen = null;
  el.app.classList.remove("sidebar-open", "members-open");
  document.title = "Parley";
  renderedRoom = null;
  renderedLastSeq = 0;
}

// ------------------------------------------------------------------ drawers
export function openSidebar() {
  el.app.classList.add("sidebar-open");
  el.scrim.hidden = false;
  el.openSidebar.setAttribute("aria-expanded", "true");
  const current = el.roomList.querySelector('[aria-current="page"]') || el.roomList.querySelector("button");
  if (current) current.focus();
}

export function closeSidebar() {
  if (!el.app.classList.contains("sidebar-open")) return;
  el.app.classList.remove("sidebar-open");
  el.openSidebar.setAttribute("aria-expanded", "false");
  syncScrim();
}

export function toggleMembers() {
  const open = !el.app.classList.contains("members-open");
  el.app.classList.toggle("members-open", open);
  el.membersBtn.setAttribute("aria-expanded", String(open));
  syncScrim();
  if (open && !media.wideMembers.matches) el.closeMembers.focus();
}

export function closeMembers() {
  el.app.classList.remove("members-open");
  el.membersBtn.setAttribute("aria-expanded", "false");
  syncScrim();
}

/** The people panel is a column on a wide screen, closed (an overlay) below. */
export function fitMembers() {
  el.app.classList.toggle("members-open", media.wideMembers.matches);
  el.membersBtn.setAttribute("aria-expanded", String(media.wideMembers.matches));
  syncScrim();
}

function syncScrim() {
  const overlay =
    el.app.classList.contains("sidebar-open") ||
    (el.app.classList.contains("members-open") && !media.wideMembers.matches);
  el.scrim.hidden = !overlay;
}

// ------------------------------------------------------------------- parts
function renderMe() {
  const me = state.chat.me;
  el.meName.textContent = me || "";
  el.meAvatar.textContent = (Array.from(me || "?")[0] || "?").toUpperCase();
  el.meAvatar.className = "avatar avatar-sm " + avatarClass(me || "?");
}

function renderConn() {
  const { state: conn, backoff, retryAt } = state.connection;
  let text;
  let banner = "";
  if (conn === "online") {
    text = "Online";
  } else if (conn === "connecting") {
    text = backoff.attempt > 0 ? "Reconnecting…" : "Connecting…";
    if (backoff.attempt > 0) banner = "Connection lost. Reconnecting…";
  } else if (conn === "reconnecting") {
    const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    text = secs > 0 ? `Reconnecting in ${secs} s` : "Reconnecting…";
    banner = `Connection lost. ${text}. Messages you send will go out once it is back.`;
  } else {
    text = "Offline";
    banner = "You are offline. Messages you send will go out once you are back online.";
  }
  el.conn.dataset.state = conn;
  if (el.connText.textContent !== text) el.connText.textContent = text;
  el.meState.textContent = text;
  el.meState.dataset.state = conn;
  el.banner.hidden = !banner;
  el.banner.dataset.state = conn;
  if (el.bannerText.textContent !== banner) el.bannerText.textContent = banner;
  el.retryNow.hidden = conn === "connecting";
}

function renderRooms() {
  const { chat } = state;
  el.roomList.replaceChildren(...chat.sortedRooms().map((room) => roomItem(chat, room)));
  el.dmList.replaceChildren(...chat.sortedDms().map((room) => roomItem(chat, room)));
  let otherUnread = 0;
  for (const room of chat.rooms.values()) if (room.name !== chat.current) otherUnread += room.unread;
  el.menuDot.hidden = otherUnread === 0;
  const total = chat.totalUnread();
  document.title = total ? `(${total > 99 ? "99+" : total}) Parley` : "Parley";
}

function roomItem(chat, room) {
  const count = room.unread;
  const li = h("li");
  const btn = h("button", "room" + (count ? " has-unread" : "") + (room.mentions ? " has-mention" : ""));
  btn.type = "button";
  btn.dataset.room = room.name;
  if (room.name === chat.current) btn.setAttribute("aria-current", "page");
  const label = chat.label(room);
  if (room.isDm) btn.append(avatar(label, "avatar-xs"));
  else btn.append(icon(room.private ? "i-lock" : "i-hash", "room-glyph"));
  btn.append(h("span", "room-label", label));
  if (room.isDm) btn.append(h("span", "sr-only", ", direct message"));
  else if (room.private) btn.append(h("span", "sr-only", ", private"));
  if (room.mentions) {
    const badge = h("span", "mention-badge");
    badge.append(
      h("span", "sr-only", ", "),
      document.createTextNode("@" + (room.mentions > 99 ? "99+" : String(room.mentions))),
      h("span", "sr-only", room.mentions === 1 ? " mention" : " mentions"),
    );
    btn.append(badge);
  }
  if (count) {
    const badge = h("span", "badge");
    badge.append(
      h("span", "sr-only", ", "),
      document.createTextNode(count > 99 ? "99+" : String(count)),
      h("span", "sr-only", " unread"),
    );
    btn.append(badge);
  }
  li.append(btn);
  return li;
}

/** The owner of the shown room, or a server admin, may set its topic, remove people and delete messages. */
export function canModerate(room) {
  if (!room) return false;
  if (state.chat.admin) return true;
  return Boolean(room.owner && state.chat.me && room.owner.toLowerCase() === state.chat.me.toLowerCase());
}

function renderHeader() {
  const { chat } = state;
  const room = chat.currentRoom;
  if (!room) return;
  const label = chat.label(room);
  el.roomName.textContent = label;
  el.roomIcon.replaceChildren(icon(room.isDm ? "i-at" : room.private ? "i-lock" : "i-hash"));
  const online = room.online.size;
  const parts = [];
  parts.push(room.isDm ? "Direct message" : room.private ? "Private room" : "Public room");
  if (room.joined) parts.push(`${online} online`);
  el.roomTopic.textContent = room.topic || parts.join(" · ");
  el.roomTopic.classList.toggle("has-topic", Boolean(room.topic));
  el.roomTopic.title = room.topic || "";
  el.topicBtn.hidden = !canModerate(room) || room.isDm;
  el.topicBtn.textContent = room.topic ? "Edit" : "Set a topic";
  el.topicBtn.setAttribute("aria-label", room.topic ? "Edit the topic" : "Set a topic");
  el.membersCount.textContent = room.joined ? String(online) : "–";
  el.inviteBtn.hidden = !room.private || room.isDm;
  el.inputLabel.textContent = `Message ${label}`;
  el.input.placeholder = room.isDm ? `Message ${label}` : `Message #${room.name}`;
}

function renderMembers() {
  const room = state.chat.currentRoom;
  if (!room) return;
  const online = [...room.online].sort((a, b) => a.localeCompare(b));
  el.membersTitle.textContent = `Online — ${online.length}`;
  if (room.joined) {
    el.onlineList.replaceChildren(...online.map((name) => personItem(room, name, true)));
  } else {
    el.membersTitle.textContent = "Online";
    el.onlineList.replaceChildren(h("li", "members-note", "Shown again once you are back online."));
  }
  const listed = (room.private || room.isDm) && room.members;
  const offline = listed ? room.members.filter((m) => !room.online.has(m)).sort() : [];
  el.offlineTitle.hidden = offline.length === 0;
  el.offlineTitle.textContent = `Offline — ${offline.length}`;
  el.offlineList.replaceChildren(...offline.map((name) => personItem(room, name, false)));
  // Only a private room can be left for good: a public one is everyone's (it would come
  // back with the room list) and nobody leaves a DM (the server answers 403).
  el.leaveBtn.hidden = !room.private || room.isDm;
}

function personItem(room, name, online) {
  const me = state.chat.me;
  const li = h("li", "person" + (online ? " online" : ""));
  li.dataset.user = name;
  const av = avatar(name, "avatar-sm");
  const wrap = h("span", "avatar-wrap");
  wrap.append(av, h("span", "presence-dot"));
  li.append(wrap, h("span", "person-name", name));
  if (name === me) {
    li.append(h("span", "you", "you"));
    return li;
  }
  if (!room.isDm) li.append(personButton("dm", "i-chat", `Message ${name}`));
  if (canModerate(room) && room.private && !room.isDm) {
    li.append(personButton("remove", "i-user-minus", `Remove ${name} from ${room.name}`));
  }
  return li;
}

/** An icon button that does `action` (the page listens on its container), named `label`. */
function actionButton(className, action, glyph, label) {
  const btn = h("button", className);
  btn.type = "button";
  btn.dataset.action = action;
  btn.setAttribute("aria-label", label);
  btn.title = label;
  btn.append(icon(glyph));
  return btn;
}

function personButton(action, glyph, label) {
  return actionButton("icon-btn icon-btn-sm person-action", action, glyph, label);
}

function renderTyping() {
  const room = state.chat.currentRoom;
  const names = room ? [...room.typing.keys()] : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  if (el.typing.textContent !== text) el.typing.textContent = text;
  el.typing.classList.toggle("active", Boolean(text));
}

function renderLogTop() {
  const room = state.chat.currentRoom;
  if (!room) return;
  el.logTop.replaceChildren();
  if (room.historyDone && (room.messages.size > 0 || !room.historyQueue.length)) {
    const intro = h("div", "room-intro");
    const glyph = h("div", "room-intro-glyph");
    glyph.append(icon(room.isDm ? "i-at" : room.private ? "i-lock" : "i-hash"));
    const label = state.chat.label(room);
    intro.append(glyph, h("h2", "", room.isDm ? label : `Welcome to #${room.name}`));
    let text = "This is the very beginning of this room.";
    if (room.isDm) text = `This is the very beginning of your conversation with ${label}.`;
    else if (room.private) text = "This is the very beginning of this private room.";
    intro.append(h("p", "", text));
    el.logTop.append(intro);
    el.logTop.dataset.state = "start";
  } else if (room.loadingOlder || room.historyQueue.length) {
    const spin = h("div", "loading");
    spin.setAttribute("role", "status");
    spin.append(h("span", "spinner"), h("span", "", "Loading messages…"));
    el.logTop.append(spin);
    el.logTop.dataset.state = "loading";
  } else {
    el.logTop.dataset.state = "more";
  }
}

// --------------------------------------------------------------------- log
export function atBottom() {
  return el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 48;
}

export function scrollToBottom() {
  el.log.scrollTop = el.log.scrollHeight;
  el.jump.hidden = true;
}

/** The log is scrolled close to its top: older history is wanted. */
export function nearTop() {
  return el.log.scrollTop < LOAD_OLDER_PX;
}

/** The message nearest the top of the viewport and its offset, to restore after a re-render. */
function captureAnchor() {
  const top = el.log.getBoundingClientRect().top;
  for (const li of el.messages.children) {
    const rect = li.getBoundingClientRect();
    if (rect.bottom > top && li.dataset.seq) return { seq: li.dataset.seq, offset: rect.top - top };
  }
  return null;
}

function restoreAnchor(anchor) {
  if (!anchor) return;
  const li = el.messages.querySelector(`li[data-seq="${anchor.seq}"]`);
  if (!li) return;
  const top = el.log.getBoundingClientRect().top;
  el.log.scrollTop += li.getBoundingClientRect().top - top - anchor.offset;
}

function messageItem(room, m, prev) {
  const { me } = state.chat;
  const date = new Date(m.ts);
  const valid = !Number.isNaN(date.getTime());
  const startsGroup =
    !prev ||
    prev.username !== m.username ||
    m.reply_to !== null ||
    !valid ||
    Number.isNaN(new Date(prev.ts).getTime()) ||
    date - new Date(prev.ts) > GROUP_GAP_MS ||
    dayKey(date) !== dayKey(new Date(prev.ts)) ||
    startsUnread(room, m, prev);
  const mine = m.username === me;
  let cls = "msg" + (startsGroup ? " group-start" : "") + (mine ? " mine" : "");
  if (m.deleted) cls += " is-deleted";
  if (!m.deleted && !mine && mentions(m, me)) cls += " mentions-me";
  if (ui.toolsOpen === m.seq) cls += " tools-open";
  const li = h("li", cls);
  li.dataset.seq = String(m.seq);
  li.dataset.user = m.username;
  if (m.reply_to !== null) li.append(replyQuote(room, m.reply_to));
  const time = h("time", "msg-time");
  if (valid) {
    time.dateTime = date.toISOString();
    time.textContent = timeFmt.format(date);
    time.title = fullFmt.format(date);
  }
  if (startsGroup) {
    li.append(avatar(m.username));
    const head = h("div", "msg-head");
    const author = h("button", "msg-author", m.username);
    author.type = "button";
    author.dataset.action = mine ? "" : "dm";
    author.tabIndex = -1; // the people panel reaches the same action by keyboard
    if (!mine) author.title = `Message ${m.username}`;
    head.append(author, time);
    li.append(head);
  } else {
    time.classList.add("msg-time-side");
    li.append(time, h("span", "sr-only", m.username + ": "));
  }
  const editing = ui.editing && ui.editing.room === room.name && ui.editing.seq === m.seq && !m.deleted;
  if (editing) li.append(editor(ui.editing));
  else if (m.text || m.deleted || !m.attachments.length) li.append(messageBody(m, me));
  if (m.attachments.length) li.append(attachmentList(m.attachments));
  const chips = reactionChips(m, me);
  if (chips) li.append(chips);
  if (!m.deleted && !editing) li.append(messageTools(room, m, mine));
  return li;
}

function messageBody(m, me) {
  const body = h("div", "msg-text");
  if (m.deleted) {
    body.classList.add("msg-tombstone");
    body.append(icon("i-trash"), h("span", "", "Message deleted"));
    return body;
  }
  appendRichText(body, m.text, m.mentions, me);
  if (m.edited) {
    const mark = h("span", "msg-edited", "(edited)");
    const when = new Date(m.edited);
    if (!Number.isNaN(when.getTime())) mark.title = "Edited " + fullFmt.format(when);
    // On the last line of text when it ends with one, else under the block.
    const last = body.lastElementChild;
    (last && last.tagName === "P" ? last : body).append(" ", mark);
  }
  return body;
}

/** The quoted message a reply answers: a button that jumps to it. */
function replyQuote(room, seq) {
  const orig = room.messages.get(seq);
  const quote = h("button", "msg-reply");
  quote.type = "button";
  quote.dataset.action = "quote";
  quote.dataset.target = String(seq);
  quote.append(icon("i-reply"));
  if (orig) {
    quote.append(h("span", "msg-reply-author", orig.username));
    const text = clip(plainText(orig.text) || messageSummary(orig), 140);
    quote.append(h("span", "msg-reply-text" + (orig.deleted ? " is-deleted" : ""), orig.deleted ? "Message deleted" : text));
    quote.setAttribute("aria-label", `In reply to ${orig.username}: ${orig.deleted ? "a deleted message" : text}. Show it`);
  } else {
    quote.append(h("span", "msg-reply-text", "an earlier message"));
    quote.setAttribute("aria-label", "In reply to an earlier message. Show it");
  }
  return quote;
}

function reactionChips(m, me) {
  const entries = Object.entries(m.reactions);
  if (!entries.length) return null;
  const row = h("div", "reactions");
  for (const [emoji, names] of entries) {
    const chip = h("button", "chip");
    chip.type = "button";
    chip.dataset.action = "chip";
    chip.dataset.emoji = emoji;
    const mineToo = names.includes(me);
    chip.setAttribute("aria-pressed", String(mineToo));
    const who = names.length > 8 ? names.slice(0, 8).join(", ") + ` and ${names.length - 8} more` : names.join(", ");
    chip.title = `${who} reacted with ${emoji}`;
    chip.setAttribute("aria-label", `${emoji} ${names.length}: ${who}${mineToo ? ". Remove yours" : ". Add yours"}`);
    chip.append(h("span", "chip-emoji", emoji), h("span", "chip-count", String(names.length)));
    row.append(chip);
  }
  row.append(actionButton("chip chip-add", "react", "i-smile", "Add a reaction"));
  return row;
}

/** React, reply, edit (own), delete (own, or a moderator's right): on hover, focus or long-press. */
function messageTools(room, m, mine) {
  const tools = h("div", "msg-tools");
  tools.setAttribute("role", "toolbar");
  tools.setAttribute("aria-label", `Actions on ${m.username}'s message`);
  tools.append(toolButton("react", "i-smile", "React"), toolButton("reply", "i-reply", "Reply"));
  if (mine) tools.append(toolButton("edit", "i-edit", "Edit"));
  if (mine || canModerate(room)) tools.append(toolButton("delete", "i-trash", "Delete"));
  return tools;
}

function toolButton(action, glyph, label) {
  return actionButton("tool", action, glyph, label);
}

/** The inline editor of one's own message: Enter saves, Escape cancels. */
function editor(editing) {
  const form = h("form", "msg-edit");
  const area = document.createElement("textarea");
  area.className = "msg-edit-input";
  area.value = editing.text;
  area.rows = Math.min(8, editing.text.split("\n").length);
  area.setAttribute("aria-label", "Edit your message");
  area.dataset.action = "edit-input";
  const foot = h("div", "msg-edit-foot");
  const hint = h("span", "hint");
  hint.append(h("kbd", "", "Esc"), " to cancel · ", h("kbd", "", "Enter"), " to save");
  const cancel = h("button", "btn btn-ghost btn-sm", "Cancel");
  cancel.type = "button";
  cancel.dataset.action = "edit-cancel";
  const save = h("button", "btn btn-primary btn-sm", "Save");
  save.type = "submit";
  foot.append(hint, cancel, save);
  form.append(area, foot);
  return form;
}

/**
 * The "New messages" divider goes before the first message after the read marker. Above the
 * first message held only when nothing older can be missing: more unread than one page opens at
 * the latest messages, and the divider appears where it belongs once older pages come.
 */
function startsUnread(room, m, prev) {
  if (room.dividerSeq === null || m.seq <= room.dividerSeq) return false;
  if (!prev) return room.historyDone || m.seq === room.dividerSeq + 1;
  return prev.seq <= room.dividerSeq;
}

function dividerItems(room, m, prev) {
  const out = [];
  const date = new Date(m.ts);
  if (!Number.isNaN(date.getTime()) && (!prev || dayKey(new Date(prev.ts)) !== dayKey(date))) {
    const li = h("li", "day");
    li.dataset.day = dayKey(date);
    li.append(h("span", "", dayLabel(date)));
    out.push(li);
  }
  if (startsUnread(room, m, prev)) {
    const li = h("li", "new-divider");
    li.append(h("span", "", "New messages"));
    out.push(li);
  }
  return out;
}

let renderedRoom = null;
let renderedLastSeq = 0;

/**
 * Draw the message list of the shown room.
 * opts.reset: room switch (scroll to the divider or the bottom);
 * opts.appended: new messages at the end (stick to the bottom if we were there; mine: always);
 * opts.prepended: older history above (keep the view where it was).
 */
function renderLog(opts) {
  const room = state.chat.currentRoom;
  if (!room) return;
  const list = room.sortedMessages();
  const wasAtBottom = atBottom();
  const sameRoom = renderedRoom === room.name;
  const lastMsg = list.at(-1);
  if (sameRoom && !opts.reset && !opts.prepended && opts.appended && appendNew(room, list, wasAtBottom, opts.mine)) {
    return;
  }

  const anchor = sameRoom && !opts.reset ? captureAnchor() : null;
  const focus = focusedIn(el.messages);
  const frag = document.createDocumentFragment();
  let prev = null;
  for (const m of list) {
    frag.append(...dividerItems(room, m, prev), messageItem(room, m, prev));
    prev = m;
  }
  el.messages.replaceChildren(frag);
  renderedRoom = room.name;
  renderedLastSeq = lastMsg ? lastMsg.seq : 0;
  renderLogTop();
  restoreFocus(focus);

  if (opts.reset || !sameRoom) {
    el.jump.hidden = true;
    const divider = el.messages.querySelector(".new-divider");
    if (divider) el.log.scrollTop = Math.max(0, divider.offsetTop - el.log.clientHeight / 3);
    else scrollToBottom();
  } else if (opts.prepended) {
    restoreAnchor(anchor);
  } else if (wasAtBottom) {
    scrollToBottom();
  } else {
    restoreAnchor(anchor);
    if (opts.appended) el.jump.hidden = false;
  }
}

/** What has the focus in `list`: its message and its action, to find it again after a redraw. */
function focusedIn(list) {
  const active = document.activeElement;
  if (!active || !list.contains(active)) return null;
  const li = active.closest("li[data-seq]");
  if (!li) return null;
  const emoji = active.dataset.emoji;
  const selection = active.tagName === "TEXTAREA" ? [active.selectionStart, active.selectionEnd] : null;
  const kind = active.classList[0] || null; // "tool", "chip"…: a chip and a tool may share an action
  const file = active.dataset.file; // an image or a file card: several in one message
  return { seq: li.dataset.seq, action: active.dataset.action || null, kind, emoji, file, selection, link: active.tagName === "A" };
}

function restoreFocus(focus) {
  if (!focus) return;
  const li = el.messages.querySelector(`li[data-seq="${focus.seq}"]`);
  if (!li) return;
  let target = null;
  if (focus.emoji) target = [...li.querySelectorAll("[data-emoji]")].find((n) => n.dataset.emoji === focus.emoji);
  else if (focus.file) target = [...li.querySelectorAll("[data-file]")].find((n) => n.dataset.file === focus.file);
  else if (focus.action) {
    target =
      li.querySelector(`.${focus.kind}[data-action="${focus.action}"]`) ??
      li.querySelector(`[data-action="${focus.action}"]`);
  }
  else if (focus.link) target = li.querySelector("a");
  if (!target) target = li.querySelector(".tool, .chip");
  if (!target) return;
  target.focus({ preventScroll: true });
  if (focus.selection && target.tagName === "TEXTAREA") target.setSelectionRange(...focus.selection);
}

/** The fast path: only messages after the last one drawn are new. Returns false if not so. */
function appendNew(room, list, wasAtBottom, mine) {
  const lastMsg = list.at(-1);
  if (!el.messages.lastElementChild || !lastMsg || lastMsg.seq <= renderedLastSeq) return false;
  const startIdx = list.findIndex((m) => m.seq > renderedLastSeq);
  if (startIdx <= 0 || list[startIdx - 1].seq !== renderedLastSeq) return false;
  const frag = document.createDocumentFragment();
  let prev = list[startIdx - 1];
  for (const m of list.slice(startIdx)) {
    frag.append(...dividerItems(room, m, prev), messageItem(room, m, prev));
    prev = m;
  }
  el.messages.append(frag);
  renderedLastSeq = lastMsg.seq;
  if (wasAtBottom || mine) scrollToBottom();
  else el.jump.hidden = false;
  return true;
}

// ----------------------------------------------------------------- pending
/** The outbox of the shown room, under the log. opts.toBottom: scroll there (just sent). */
function renderPending(opts) {
  const { chat, outbox, connection } = state;
  const me = chat.me || "";
  const wasAtBottom = opts.toBottom || atBottom();
  const frag = document.createDocumentFragment();
  const lastSent = el.messages.lastElementChild;
  let grouped = Boolean(lastSent && lastSent.dataset.user === chat.me);
  for (const item of outbox.inRoom(chat.current)) {
    const room = chat.rooms.get(item.room);
    const [kind, label] = pendingStatus(item, room, connection.state === "online", outbox.isHeld(item.room));
    const li = h("li", "msg mine pending is-" + kind + (grouped ? "" : " group-start"));
    li.dataset.clientId = item.client_id;
    const status = h("span", "msg-status");
    status.append(icon(kind === "failed" ? "i-alert" : "i-clock"));
    status.append(h("span", "", label));
    const body = document.createDocumentFragment();
    if (item.text || !item.attachments.length) {
      const text = h("div", "msg-text");
      appendRichText(text, item.text);
      body.append(text);
    }
    if (item.attachments.length) body.append(attachmentList(item.attachments));
    if (grouped) {
      li.append(h("span", "msg-time-side"), h("span", "sr-only", me + ": "), body, status);
      status.classList.add("msg-status-below");
    } else {
      li.append(avatar(me || "?"));
      const head = h("div", "msg-head");
      head.append(h("span", "msg-author", me), status);
      li.append(head, body);
    }
    grouped = true;
    if (item.status === "failed") li.append(pendingActions());
    frag.append(li);
  }
  el.pending.replaceChildren(frag);
  if (wasAtBottom) scrollToBottom();
}

function pendingStatus(item, room, online, held) {
  if (item.status === "failed") return ["failed", item.error || "Not sent"];
  if (item.status !== "queued") return ["sending", "Sending…"];
  if (!online || !room || !room.joined) return ["offline", "Waiting for connection…"];
  if (held) return ["slow", "Sending slowed down, will retry shortly…"];
  return ["sending", "Sending…"];
}

function pendingActions() {
  const actions = h("div", "msg-actions");
  const retry = h("button", "btn btn-sm btn-ghost", "Retry");
  retry.type = "button";
  retry.dataset.action = "retry";
  const drop = h("button", "btn btn-sm btn-ghost", "Discard");
  drop.type = "button";
  drop.dataset.action = "discard";
  actions.append(retry, drop);
  return actions;
}
