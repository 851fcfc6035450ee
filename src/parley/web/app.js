/* Parley browser client.
 *
 * Plain script, no build step, no dependencies. Served by Parley under
 * `Content-Security-Policy: default-src 'self'`: nothing inline, every text
 * rendered through textContent / text nodes, never innerHTML.
 *
 * See docs/web-client.md for the design (states, reconnect/resume, the outbox).
 */
"use strict";

(() => {
  // ---------------------------------------------------------------- constants
  const PAGE_SIZE = 50; // messages per history page
  const MAX_TEXT = 4000; // characters (code points), as the server counts them
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 30000;
  const STABLE_MS = 10000; // a connection that lived this long resets the backoff
  const TYPING_SEND_MS = 3000; // at most one typing event per room per 3 s
  const TYPING_SHOW_MS = 5000; // hide "X is typing…" after 5 s without a new one
  const GROUP_GAP_MS = 5 * 60 * 1000; // same sender within 5 min: one group
  const ROOMS_REFRESH_MS = 30000; // look for rooms we were invited to
  const LOAD_OLDER_PX = 400; // start loading older history this close to the top
  const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;
  const ROOM_RE = /^[a-z0-9_-]{1,64}$/; // a new room's name
  // How the server names a room to us: its name, or name~tag when another room we see has
  // that name (docs/protocol.md, "Room names").
  const ROOM_REF_RE = /^[a-z0-9_-]{1,64}(~[0-9a-f]{10})?$/;
  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  const AVATAR_COLORS = 11; // a prime spreads names better
  const CLOSE_SIGNED_OUT = 4001; // the server ended this session (CloseCode in protocol/errors.py)

  // -------------------------------------------------------------------- state
  /** @type {{
   *   me: string|null, rooms: Map<string, any>, current: string|null,
   *   ws: WebSocket|null, conn: string, attempt: number, retryAt: number,
   *   retryTimer: number|null, tickTimer: number|null, helloAt: number,
   *   outbox: Map<string, any>, readMarks: Record<string, number>|null,
   *   roomsTimer: number|null, generation: number
   * }} */
  const S = {
    me: null,
    rooms: new Map(),
    current: null,
    ws: null,
    conn: "connecting",
    attempt: 0,
    retryAt: 0,
    retryTimer: null,
    tickTimer: null,
    helloAt: 0,
    outbox: new Map(), // client_id -> outgoing message, in creation order
    readMarks: {}, // room -> last seq read, persisted per user in localStorage
    firstVisit: true, // no read marks stored yet: what already exists counts as read
    roomsTimer: null,
    generation: 0, // bumps on sign-out so stale callbacks do nothing
  };

  const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const el = {
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
    authError: $("auth-error"),
    authSubmit: /** @type {HTMLButtonElement} */ ($("auth-submit")),
    authSwitch: $("auth-switch"),
    authSwitchText: $("auth-switch-text"),
    app: $("app-view"),
    sidebar: $("sidebar"),
    scrim: $("scrim"),
    openSidebar: $("open-sidebar"),
    closeSidebar: $("close-sidebar"),
    menuDot: $("menu-dot"),
    roomList: $("room-list"),
    newRoom: $("new-room"),
    meAvatar: $("me-avatar"),
    meName: $("me-name"),
    meState: $("me-state"),
    signOut: $("sign-out"),
    roomIcon: $("room-icon"),
    roomName: $("room-name"),
    roomSub: $("room-sub"),
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
  };

  // ------------------------------------------------------------------ helpers
  function randomId() {
    // A UUIDv7 layout: 48 bits of Unix time in ms, then 80 random bits, as 32 hex digits.
    // Time-ordered ids append to one edge of the server's resend index instead of dirtying
    // an index page per message. crypto.getRandomValues works on plain http too
    // (randomUUID needs a secure context).
    const bytes = new Uint8Array(10);
    crypto.getRandomValues(bytes);
    const time = Date.now().toString(16).padStart(12, "0");
    return time + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function codePoints(text) {
    let n = 0;
    for (const _ of text) n++;
    return n;
  }

  function h(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function icon(name, className) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    if (className) svg.setAttribute("class", className);
    const use = document.createElementNS(ns, "use");
    use.setAttribute("href", "#" + name);
    svg.append(use);
    return svg;
  }

  function avatarClass(name) {
    let hash = 0;
    for (const ch of name.toLowerCase()) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    return "av-" + (hash % AVATAR_COLORS);
  }

  function avatar(name, extra) {
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

  function safeHref(candidate) {
    try {
      const url = new URL(candidate);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  /** Drop trailing punctuation from a URL found in text; keep a ")" that closes one inside it. */
  function trimUrl(raw) {
    const pairs = { ")": "(", "]": "[", "}": "{" };
    for (;;) {
      const end = raw.at(-1);
      if (end && ".,;:!?".includes(end)) {
        raw = raw.slice(0, -1);
      } else if (end && end in pairs && raw.split(end).length > raw.split(pairs[end]).length) {
        raw = raw.slice(0, -1);
      } else {
        return raw;
      }
    }
  }

  /** Append `text` to `parent` as text nodes; http(s) URLs become <a> built with the DOM API. */
  function appendRichText(parent, text) {
    let last = 0;
    for (const match of text.matchAll(URL_RE)) {
      const raw = trimUrl(match[0]);
      const start = match.index ?? 0;
      if (start > last) parent.append(document.createTextNode(text.slice(last, start)));
      const href = safeHref(raw);
      if (href) {
        const a = document.createElement("a");
        a.href = href;
        a.textContent = raw;
        a.target = "_blank";
        a.rel = "noopener noreferrer nofollow";
        parent.append(a);
      } else {
        parent.append(document.createTextNode(raw));
      }
      last = start + raw.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  let announceQueue = [];
  let announceTimer = null;
  /** Coalesce bursts (a resume can deliver many messages at once) into one announcement. */
  function announce(text) {
    announceQueue.push(text);
    if (announceTimer) return;
    announceTimer = setTimeout(() => {
      const items = announceQueue;
      announceQueue = [];
      announceTimer = null;
      el.announcer.textContent = items.length === 1 ? items[0] : `${items.length} new messages. Latest: ${items[items.length - 1]}`;
    }, 400);
  }

  function clip(text, n) {
    const cps = Array.from(text);
    return cps.length > n ? cps.slice(0, n).join("") + "…" : text;
  }

  // ---------------------------------------------------------------------- API
  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    let data = null;
    const type = resp.headers.get("Content-Type") || "";
    if (resp.status !== 204 && type.includes("json")) {
      try {
        data = await resp.json();
      } catch {
        data = null;
      }
    }
    return { status: resp.status, data, headers: resp.headers };
  }

  function errorMessage(res, fallback) {
    return (res.data && res.data.error && res.data.error.message) || fallback;
  }

  function retryAfterSeconds(res) {
    const body = res.data && res.data.error && res.data.error.retry_after;
    const header = Number(res.headers.get("Retry-After"));
    const value = Number(body) || header || 0;
    return Math.max(1, Math.ceil(value));
  }

  // --------------------------------------------------------------------- auth
  let authMode = "login"; // or "register"
  let authBusy = false;
  let endingNotice = ""; // why the session is about to end, when we ended it ourselves

  function showView(name) {
    el.boot.hidden = name !== "boot";
    el.auth.hidden = name !== "auth";
    el.app.hidden = name !== "app";
  }

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
    showView("auth");
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
    const gen = S.generation;
    try {
      await api("POST", "/api/logout");
    } catch {
      /* signed out locally anyway */
    }
    if (gen === S.generation) stopApp("You signed out.");
  }

  // ------------------------------------------------------------------- rooms
  function makeRoom(name) {
    return {
      name,
      private: false,
      owner: null,
      known: false, // the server has told us about it (room list, hello or joined)
      joining: null, // the socket a join was sent on
      lastSeq: 0, // highest seq known to exist in the room
      seen: null, // resume point: every message <= seen is held (or deliberately not loaded)
      messages: new Map(), // seq -> Message
      sorted: null, // cached ascending array
      joined: false, // joined on the current socket
      opened: false, // latest page requested this session
      historyQueue: [], // kinds of in-flight WS history requests, FIFO
      loadingOlder: false,
      historyDone: false,
      online: new Set(),
      members: null, // for private rooms: from GET /api/rooms/{room}/members
      typing: new Map(), // username -> timer
      lastTypingSent: 0,
      heldUntil: 0, // rate limited: the outbox waits until then
      holdTimer: null,
      dividerSeq: null, // "new messages" divider after this seq
      draft: "",
    };
  }

  function ensureRoom(name) {
    let room = S.rooms.get(name);
    if (!room) {
      room = makeRoom(name);
      S.rooms.set(name, room);
      if (!S.firstVisit && !(name in S.readMarks)) S.readMarks[name] = 0;
    }
    return room;
  }

  function sortedRooms() {
    return [...S.rooms.values()].sort((a, b) => {
      if (a.name === "general") return -1;
      if (b.name === "general") return 1;
      if (a.private !== b.private) return a.private ? 1 : -1;
      return a.name.localeCompare(b.name);
    });
  }

  function readKey() {
    return "parley.read." + (S.me || "").toLowerCase();
  }

  function loadReadMarks() {
    try {
      const raw = localStorage.getItem(readKey());
      const parsed = raw ? JSON.parse(raw) : null;
      S.readMarks = parsed && typeof parsed === "object" ? parsed : {};
      S.firstVisit = !(parsed && typeof parsed === "object");
    } catch {
      S.readMarks = {};
      S.firstVisit = true;
    }
  }

  // Unsent messages survive a reload of this tab: sessionStorage is per tab and goes with
  // it. Saved when the page is hidden or left; on the next load they are sent again with
  // the same client_id, so one that did reach the server is not stored twice.
  function outboxKey() {
    return "parley.outbox." + (S.me || "").toLowerCase();
  }

  function saveOutbox() {
    if (!S.me) return;
    const items = [...S.outbox.values()]
      .filter((item) => item.status !== "acked")
      .map((item) => ({
        client_id: item.client_id,
        room: item.room,
        text: item.text,
        created: item.created.toISOString(),
        error: item.status === "failed" ? item.error || "" : null,
      }));
    try {
      if (items.length) sessionStorage.setItem(outboxKey(), JSON.stringify(items));
      else sessionStorage.removeItem(outboxKey());
    } catch {
      /* private mode or full: unsent messages won't survive a reload */
    }
  }

  function loadOutbox() {
    let items;
    try {
      items = JSON.parse(sessionStorage.getItem(outboxKey()) || "[]");
    } catch {
      items = [];
    }
    if (!Array.isArray(items)) return;
    for (const it of items) {
      if (!it || typeof it.client_id !== "string" || typeof it.text !== "string") continue;
      if (typeof it.room !== "string" || !ROOM_REF_RE.test(it.room)) continue;
      const failed = typeof it.error === "string";
      const created = new Date(it.created);
      S.outbox.set(it.client_id, {
        client_id: it.client_id,
        room: it.room,
        text: it.text,
        status: failed ? "failed" : "queued",
        created: Number.isNaN(created.getTime()) ? new Date() : created,
        error: failed ? it.error : null,
      });
    }
  }

  let saveMarksTimer = null;
  function saveReadMarks() {
    if (saveMarksTimer) return;
    saveMarksTimer = setTimeout(() => {
      saveMarksTimer = null;
      try {
        if (S.me) localStorage.setItem(readKey(), JSON.stringify(S.readMarks));
      } catch {
        /* private mode: unread counts just won't survive a reload */
      }
    }, 500);
  }

  function readSeq(room) {
    return S.readMarks[room.name] ?? (S.firstVisit ? room.lastSeq : 0);
  }

  function unread(room) {
    return Math.max(0, room.lastSeq - readSeq(room));
  }

  function markRead(room) {
    if (!room.known) return; // nothing heard from the server about it yet
    if ((S.readMarks[room.name] ?? -1) !== room.lastSeq) {
      S.readMarks[room.name] = room.lastSeq;
      saveReadMarks();
    }
  }

  function canSeeCurrent() {
    return document.visibilityState === "visible" && !el.app.hidden;
  }

  /** Merge the server's room list (GET /api/rooms or hello) into ours. */
  function mergeRooms(list, authoritative) {
    const names = new Set();
    for (const info of list) {
      if (!info || typeof info.room !== "string") continue;
      names.add(info.room);
      const room = ensureRoom(info.room);
      room.known = true;
      if (typeof info.private === "boolean") room.private = info.private;
      if (info.owner) room.owner = info.owner;
      if (typeof info.last_seq === "number") room.lastSeq = Math.max(room.lastSeq, info.last_seq);
    }
    if (S.firstVisit && authoritative) {
      // First visit in this browser: the backlog of public rooms counts as read; what is in
      // the private rooms we were invited to is shown as unread.
      for (const room of S.rooms.values()) {
        if (!(room.name in S.readMarks)) S.readMarks[room.name] = room.private ? 0 : room.lastSeq;
      }
      S.firstVisit = false;
      saveReadMarks();
    }
    if (authoritative) {
      for (const name of [...S.rooms.keys()]) {
        if (!names.has(name) && name !== "general") dropRoom(name);
      }
    }
    ensureRoom("general");
    joinAll();
    renderRooms();
    if (!S.current || !S.rooms.has(S.current)) selectRoom(roomFromHash() || "general", false);
  }

  function dropRoom(name) {
    S.rooms.delete(name);
    for (const [id, item] of S.outbox) if (item.room === name) S.outbox.delete(id);
    if (S.current === name) selectRoom("general", false);
  }

  async function refreshRooms() {
    const gen = S.generation;
    try {
      const res = await api("GET", "/api/rooms");
      if (gen !== S.generation) return;
      if (res.status === 200 && res.data && Array.isArray(res.data.rooms)) {
        mergeRooms(res.data.rooms, true);
        // Messages restored after a reload for a room we no longer have are not sent later
        // behind the person's back (say, to a new room that takes the old name).
        for (const [id, item] of S.outbox) if (!S.rooms.has(item.room)) S.outbox.delete(id);
        renderHeader();
      } else if (res.status === 401) {
        sessionEnded();
      }
    } catch {
      /* offline: the socket state tells the user */
    }
  }

  async function refreshMembers(room) {
    if (!room.private) return;
    const gen = S.generation;
    try {
      const res = await api("GET", `/api/rooms/${encodeURIComponent(room.name)}/members`);
      if (gen !== S.generation) return;
      if (res.status === 200 && res.data && Array.isArray(res.data.members)) {
        room.members = res.data.members.filter((m) => typeof m === "string");
        if (room.name === S.current) renderMembers();
      }
    } catch {
      /* keep what we had */
    }
  }

  function roomFromHash() {
    const name = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
    return ROOM_REF_RE.test(name) && S.rooms.has(name) ? name : null;
  }

  function selectRoom(name, focusComposer) {
    const room = S.rooms.get(name);
    if (!room) return;
    const previous = S.rooms.get(S.current || "");
    if (previous && previous !== room) {
      previous.draft = el.input.value;
      previous.dividerSeq = null;
    }
    const changed = S.current !== name;
    S.current = name;
    if (changed) {
      const mark = readSeq(room);
      room.dividerSeq = room.lastSeq > mark ? mark : null;
      el.input.value = room.draft;
      updateCount();
      if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
    }
    if (S.ws && S.ws.readyState === WebSocket.OPEN && room.joined && !room.opened) requestLatest(room);
    if (canSeeCurrent()) markRead(room);
    renderRooms();
    renderHeader();
    renderMembers();
    renderTyping();
    renderLog({ reset: changed });
    renderPending();
    closeSidebar();
    if (room.private && room.members === null) refreshMembers(room);
    if (focusComposer) el.input.focus();
  }

  // -------------------------------------------------------------- connection
  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/chat";
  }

  function send(frame) {
    if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return false;
    try {
      S.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  function setConn(state) {
    const changed = S.conn !== state;
    S.conn = state;
    renderConn();
    if (changed) renderPending();
  }

  function connect() {
    clearRetry();
    if (S.ws) return;
    if (navigator.onLine === false) {
      setConn("offline");
      return;
    }
    setConn("connecting");
    const gen = S.generation;
    let ws;
    try {
      ws = new WebSocket(wsUrl(), "parley.v1");
    } catch {
      scheduleReconnect(false);
      return;
    }
    S.ws = ws;
    let greeted = false;
    ws.onmessage = (event) => {
      if (S.ws !== ws || gen !== S.generation) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame.type !== "string") return;
      if (frame.type === "hello") greeted = true;
      onFrame(frame);
    };
    ws.onclose = (event) => {
      if (S.ws !== ws) return;
      S.ws = null;
      if (gen !== S.generation) return;
      onSocketClosed(event.code, greeted);
    };
    // `error` is always followed by `close`; nothing to do here.
    ws.onerror = () => {};
  }

  /** Abandon the current socket without waiting for a close handshake. */
  function dropSocket() {
    const ws = S.ws;
    if (!ws) return;
    S.ws = null;
    ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000, "network changed");
    } catch {
      /* already closing */
    }
    onSocketClosed(1000, true);
  }

  function onSocketClosed(code, greeted) {
    for (const room of S.rooms.values()) {
      room.joined = false;
      // An unanswered first page is asked for again after the next join.
      if (room.historyQueue.includes("latest")) room.opened = false;
      room.historyQueue = [];
      room.loadingOlder = false;
      room.online.clear();
      for (const timer of room.typing.values()) clearTimeout(timer);
      room.typing.clear();
    }
    for (const item of S.outbox.values()) if (item.status === "sending") item.status = "queued";
    renderPending();
    renderMembers();
    renderTyping();
    if (code === CLOSE_SIGNED_OUT) {
      sessionEnded();
      return;
    }
    const stable = greeted && Date.now() - S.helloAt >= STABLE_MS;
    if (stable) S.attempt = 0;
    scheduleReconnect(!greeted);
  }

  /** Exponential backoff with full jitter: delay = random(0, min(cap, base * 2^attempt)). */
  function scheduleReconnect(checkSession) {
    clearRetry();
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** S.attempt);
    S.attempt = Math.min(S.attempt + 1, 16);
    const delay = Math.random() * ceiling;
    S.retryAt = Date.now() + delay;
    if (navigator.onLine === false) {
      setConn("offline");
      return;
    }
    setConn("reconnecting");
    S.retryTimer = setTimeout(connect, delay);
    S.tickTimer = setInterval(renderConn, 250);
    if (checkSession) checkSessionStillValid();
  }

  function clearRetry() {
    if (S.retryTimer) clearTimeout(S.retryTimer);
    if (S.tickTimer) clearInterval(S.tickTimer);
    S.retryTimer = null;
    S.tickTimer = null;
  }

  /** A handshake that fails before `hello` may be a 401: ask /api/me. */
  async function checkSessionStillValid() {
    const gen = S.generation;
    try {
      const res = await api("GET", "/api/me");
      if (gen === S.generation && res.status === 401) sessionEnded();
    } catch {
      /* server unreachable: keep retrying */
    }
  }

  function retryNow() {
    if (S.ws) return;
    connect();
  }

  function sessionEnded() {
    stopApp(endingNotice || "Your session ended. Sign in again.");
  }

  // ----------------------------------------------------------------- frames
  function onFrame(frame) {
    switch (frame.type) {
      case "hello":
        return onHello(frame);
      case "joined":
        return onJoined(frame);
      case "message":
        return onMessage(frame, "live");
      case "ack":
        return onAck(frame);
      case "history":
        return onHistory(frame);
      case "typing":
        return onTyping(frame);
      case "presence":
        return onPresence(frame);
      case "error":
        return onError(frame);
      default:
        return undefined;
    }
  }

  function onHello(frame) {
    S.helloAt = Date.now();
    if (typeof frame.username === "string" && frame.username !== S.me) {
      S.me = frame.username;
      renderMe();
    }
    setConn("online");
    mergeRooms(Array.isArray(frame.rooms) ? frame.rooms : [], false);
    refreshRooms();
  }

  /** Join every room we know on this socket; resume from the last seq seen. */
  function joinAll() {
    if (!S.ws || S.ws.readyState !== WebSocket.OPEN || S.conn !== "online") return;
    for (const room of S.rooms.values()) {
      if (room.joined || room.joining === S.ws) continue;
      const frame = { type: "join", room: room.name };
      if (room.seen !== null) frame.since = room.seen;
      if (send(frame)) room.joining = S.ws;
    }
  }

  function onJoined(frame) {
    const room = S.rooms.get(frame.room);
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
    if (room.name === S.current) {
      if (!room.opened) requestLatest(room);
      if (canSeeCurrent()) markRead(room);
      renderMembers();
      renderHeader();
    }
    renderRooms();
    flushOutbox(room.name);
  }

  function requestLatest(room) {
    room.opened = true;
    room.historyQueue.push("latest");
    send({ type: "history", room: room.name, limit: PAGE_SIZE });
    renderLogTop();
  }

  function loadOlder() {
    const room = S.rooms.get(S.current || "");
    if (!room || !room.joined || room.loadingOlder || room.historyDone || !room.opened) return;
    if (room.historyQueue.includes("latest")) return;
    const oldest = firstSeq(room) ?? (room.seen !== null ? room.seen + 1 : null);
    if (oldest === null || oldest <= 1) {
      room.historyDone = true;
      renderLogTop();
      return;
    }
    room.loadingOlder = true;
    room.historyQueue.push("before");
    send({ type: "history", room: room.name, before: oldest, limit: PAGE_SIZE });
    renderLogTop();
  }

  function firstSeq(room) {
    const list = sortedMessages(room);
    return list.length ? list[0].seq : null;
  }

  function sortedMessages(room) {
    if (!room.sorted) room.sorted = [...room.messages.values()].sort((a, b) => a.seq - b.seq);
    return room.sorted;
  }

  function validMessage(m) {
    return (
      m &&
      typeof m.room === "string" &&
      Number.isInteger(m.seq) &&
      m.seq > 0 &&
      typeof m.username === "string" &&
      typeof m.text === "string"
    );
  }

  /** Store a message; returns true when it was new (de-duplicated by seq). */
  function storeMessage(room, m) {
    if (room.messages.has(m.seq)) return false;
    room.messages.set(m.seq, {
      room: m.room,
      seq: m.seq,
      username: m.username,
      text: m.text,
      ts: m.ts,
      client_id: m.client_id ?? null,
    });
    room.sorted = null;
    if (m.seq > room.lastSeq) room.lastSeq = m.seq;
    // A message of ours that was waiting in the outbox is now delivered.
    if (m.client_id && m.username === S.me && S.outbox.delete(m.client_id)) outboxChanged();
    return true;
  }

  /** Advance the contiguous resume point; a hole asks the server for what is missing. */
  function advanceSeen(room) {
    if (room.seen === null) return;
    while (room.messages.has(room.seen + 1)) room.seen++;
    const highest = sortedMessages(room).at(-1);
    if (highest && highest.seq > room.seen + 1 && !room.historyQueue.includes("after")) {
      room.historyQueue.push("after");
      send({ type: "history", room: room.name, after: room.seen, limit: 100 });
    }
  }

  function onMessage(m, source) {
    if (!validMessage(m)) return;
    const room = S.rooms.get(m.room);
    if (!room) return;
    const fresh = storeMessage(room, m);
    advanceSeen(room);
    if (!fresh) return;
    const typingTimer = room.typing.get(m.username);
    if (typingTimer) {
      clearTimeout(typingTimer);
      room.typing.delete(m.username);
      if (room.name === S.current) renderTyping();
    }
    const mine = m.username === S.me;
    if (mine) flushOutbox(room.name);
    if (room.name === S.current && canSeeCurrent()) markRead(room);
    else if (mine && readSeq(room) === m.seq - 1) markRead(room);
    if (source === "live" && !mine) {
      if (room.name === S.current) announce(`${m.username}: ${clip(m.text, 200)}`);
      else announce(`New message in ${room.name} from ${m.username}`);
    }
    if (room.name === S.current) {
      renderLog({ appended: true, mine });
      renderPending();
    }
    renderRooms();
  }

  function onAck(frame) {
    const item = S.outbox.get(frame.client_id);
    if (!item) return;
    outboxChanged();
    const room = S.rooms.get(item.room);
    if (room && room.messages.has(frame.seq)) {
      S.outbox.delete(item.client_id);
    } else {
      item.status = "acked";
      item.seq = frame.seq;
      // The message frame follows (live or via resume); if it somehow is older than our
      // resume point, fetch it so the pending line can turn into the real one.
      if (room && room.seen !== null && frame.seq <= room.seen) {
        room.historyQueue.push("after");
        send({ type: "history", room: room.name, after: frame.seq - 1, limit: 1 });
      }
    }
    flushOutbox(item.room);
    if (item.room === S.current) renderPending();
  }

  function onHistory(frame) {
    const room = S.rooms.get(frame.room);
    if (!room) return;
    const kind = room.historyQueue.shift() || "latest";
    const list = Array.isArray(frame.messages) ? frame.messages.filter(validMessage) : [];
    let added = 0;
    for (const m of list) if (storeMessage(room, m)) added++;
    if (kind === "latest" && list.length < PAGE_SIZE) room.historyDone = true;
    if (kind === "before") {
      room.loadingOlder = false;
      if (list.length < PAGE_SIZE) room.historyDone = true;
    }
    const first = firstSeq(room);
    if (first !== null && first <= 1) room.historyDone = true;
    advanceSeen(room);
    if (room.name === S.current) {
      if (kind === "latest") renderLog({ reset: true });
      else if (added) renderLog({ prepended: kind === "before" });
      renderLogTop();
      renderPending();
      // Still at the top (short page, tall screen): keep going.
      if (kind === "before" || kind === "latest") requestAnimationFrame(maybeLoadOlder);
    }
    renderRooms();
  }

  function onTyping(frame) {
    const room = S.rooms.get(frame.room);
    if (!room || typeof frame.username !== "string" || frame.username === S.me) return;
    const old = room.typing.get(frame.username);
    if (old) clearTimeout(old);
    room.typing.set(
      frame.username,
      setTimeout(() => {
        room.typing.delete(frame.username);
        if (room.name === S.current) renderTyping();
      }, TYPING_SHOW_MS),
    );
    if (room.name === S.current) renderTyping();
  }

  function onPresence(frame) {
    const room = S.rooms.get(frame.room);
    if (!room || typeof frame.username !== "string") return;
    if (frame.online) room.online.add(frame.username);
    else room.online.delete(frame.username);
    if (room.name === S.current) {
      renderMembers();
      renderHeader();
    }
  }

  function onError(frame) {
    const item = frame.ref ? S.outbox.get(frame.ref) : null;
    if (item) {
      const room = S.rooms.get(item.room);
      if ((frame.code === "rate_limited" || frame.code === "unavailable") && room) {
        // Not stored: hold this one (and everything after it in the room) and try again later.
        const wait = frame.code === "rate_limited" ? Math.max(1, Number(frame.retry_after) || 1) : 3;
        item.status = "queued";
        holdOutbox(room, wait * 1000);
      } else {
        item.status = "failed";
        item.error =
          frame.code === "too_large"
            ? "Too long to send (4000 characters at most)."
            : frame.message || "The server refused this message.";
        flushOutbox(item.room);
      }
      if (item.room === S.current) renderPending();
      return;
    }
    if (frame.code === "not_found" || frame.code === "forbidden") {
      // A room we can no longer see (or that is gone): ask the server what is left.
      refreshRooms();
    }
  }

  // ---------------------------------------------------------------- outbox
  function sendMessage() {
    const room = S.rooms.get(S.current || "");
    if (!room) return;
    const text = el.input.value;
    if (!text.trim()) return;
    if (codePoints(text) > MAX_TEXT) {
      updateCount();
      el.input.focus();
      return;
    }
    const item = { client_id: randomId(), room: room.name, text, status: "queued", created: new Date(), error: null };
    S.outbox.set(item.client_id, item);
    el.input.value = "";
    room.draft = "";
    updateCount();
    flushOutbox(room.name);
    renderPending();
    scrollToBottom();
  }

  /**
   * Send the next unsent message of `roomName`, always with its own client_id, so a retry
   * is recognised by the server. One message in flight per room keeps them in order even
   * when the server asks us to slow down.
   */
  function flushOutbox(roomName) {
    const room = S.rooms.get(roomName);
    if (!room || !room.joined || Date.now() < room.heldUntil) return;
    for (const item of S.outbox.values()) {
      if (item.room !== roomName) continue;
      if (item.status === "sending") break;
      if (item.status !== "queued") continue; // failed ones wait for the person; acked ones are done
      if (send({ type: "send", room: item.room, text: item.text, client_id: item.client_id })) {
        item.status = "sending";
      }
      break;
    }
    if (roomName === S.current) renderPending();
  }

  function holdOutbox(room, ms) {
    room.heldUntil = Date.now() + ms;
    clearTimeout(room.holdTimer);
    room.holdTimer = setTimeout(() => {
      room.heldUntil = 0;
      flushOutbox(room.name);
    }, ms);
  }

  function retryItem(id) {
    const item = S.outbox.get(id);
    if (!item) return;
    item.status = "queued";
    item.error = null;
    flushOutbox(item.room);
    renderPending();
  }

  function discardItem(id) {
    S.outbox.delete(id);
    renderPending();
    el.input.focus();
  }

  function noteTyping() {
    const room = S.rooms.get(S.current || "");
    if (!room || !room.joined || !el.input.value.trim()) return;
    const now = Date.now();
    if (now - room.lastTypingSent < TYPING_SEND_MS) return;
    if (send({ type: "typing", room: room.name })) room.lastTypingSent = now;
  }

  function updateCount() {
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

  // -------------------------------------------------------------- rendering
  function renderMe() {
    el.meName.textContent = S.me || "";
    el.meAvatar.textContent = (Array.from(S.me || "?")[0] || "?").toUpperCase();
    el.meAvatar.className = "avatar avatar-sm " + avatarClass(S.me || "?");
  }

  function renderConn() {
    const state = S.conn;
    let text;
    let banner = "";
    if (state === "online") {
      text = "Online";
    } else if (state === "connecting") {
      text = S.attempt > 0 ? "Reconnecting…" : "Connecting…";
      if (S.attempt > 0) banner = "Connection lost. Reconnecting…";
    } else if (state === "reconnecting") {
      const secs = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
      text = secs > 0 ? `Reconnecting in ${secs} s` : "Reconnecting…";
      banner = `Connection lost. ${text}. Messages you send will go out once it is back.`;
    } else {
      text = "Offline";
      banner = "You are offline. Messages you send will go out once you are back online.";
    }
    el.conn.dataset.state = state;
    if (el.connText.textContent !== text) el.connText.textContent = text;
    el.meState.textContent = text;
    el.meState.dataset.state = state;
    el.banner.hidden = !banner;
    el.banner.dataset.state = state;
    if (el.bannerText.textContent !== banner) el.bannerText.textContent = banner;
    el.retryNow.hidden = state === "connecting";
  }

  function renderRooms() {
    const frag = document.createDocumentFragment();
    let total = 0;
    let otherUnread = 0;
    for (const room of sortedRooms()) {
      const count = room.name === S.current && canSeeCurrent() ? 0 : unread(room);
      total += count;
      if (room.name !== S.current) otherUnread += count;
      const li = h("li");
      const btn = h("button", "room" + (count ? " has-unread" : ""));
      btn.type = "button";
      btn.dataset.room = room.name;
      if (room.name === S.current) btn.setAttribute("aria-current", "page");
      btn.append(icon(room.private ? "i-lock" : "i-hash", "room-glyph"));
      btn.append(h("span", "room-label", room.name));
      if (room.private) btn.append(h("span", "sr-only", ", private"));
      if (count) {
        const badge = h("span", "badge");
        badge.append(h("span", "sr-only", ", "), document.createTextNode(count > 99 ? "99+" : String(count)), h("span", "sr-only", " unread"));
        btn.append(badge);
      }
      li.append(btn);
      frag.append(li);
    }
    el.roomList.replaceChildren(frag);
    el.menuDot.hidden = otherUnread === 0;
    document.title = total ? `(${total > 99 ? "99+" : total}) Parley` : "Parley";
  }

  function renderHeader() {
    const room = S.rooms.get(S.current || "");
    if (!room) return;
    el.roomName.textContent = room.name;
    el.roomIcon.replaceChildren(icon(room.private ? "i-lock" : "i-hash"));
    const online = room.online.size;
    const parts = [];
    parts.push(room.private ? "Private room" : "Public room");
    if (room.joined) parts.push(`${online} online`);
    el.roomSub.textContent = parts.join(" · ");
    el.membersCount.textContent = room.joined ? String(online) : "–";
    el.inviteBtn.hidden = !room.private;
    el.inputLabel.textContent = `Message ${room.name}`;
    el.input.placeholder = `Message #${room.name}`;
  }

  function renderMembers() {
    const room = S.rooms.get(S.current || "");
    if (!room) return;
    const online = [...room.online].sort((a, b) => a.localeCompare(b));
    el.membersTitle.textContent = `Online — ${online.length}`;
    if (room.joined) {
      el.onlineList.replaceChildren(...online.map((name) => personItem(name, true)));
    } else {
      el.membersTitle.textContent = "Online";
      el.onlineList.replaceChildren(h("li", "members-note", "Shown again once you are back online."));
    }
    const offline = room.private && room.members ? room.members.filter((m) => !room.online.has(m)).sort() : [];
    el.offlineTitle.hidden = offline.length === 0;
    el.offlineTitle.textContent = `Offline — ${offline.length}`;
    el.offlineList.replaceChildren(...offline.map((name) => personItem(name, false)));
    renderHeader();
  }

  function personItem(name, online) {
    const li = h("li", "person" + (online ? " online" : ""));
    li.dataset.user = name;
    const av = avatar(name, "avatar-sm");
    const wrap = h("span", "avatar-wrap");
    wrap.append(av, h("span", "presence-dot"));
    li.append(wrap, h("span", "person-name", name));
    if (name === S.me) li.append(h("span", "you", "you"));
    return li;
  }

  function renderTyping() {
    const room = S.rooms.get(S.current || "");
    const names = room ? [...room.typing.keys()] : [];
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    if (el.typing.textContent !== text) el.typing.textContent = text;
    el.typing.classList.toggle("active", Boolean(text));
  }

  function renderLogTop() {
    const room = S.rooms.get(S.current || "");
    if (!room) return;
    el.logTop.replaceChildren();
    if (room.historyDone && (room.messages.size > 0 || !room.historyQueue.length)) {
      const intro = h("div", "room-intro");
      const glyph = h("div", "room-intro-glyph");
      glyph.append(icon(room.private ? "i-lock" : "i-hash"));
      intro.append(glyph, h("h2", "", `Welcome to #${room.name}`));
      intro.append(
        h("p", "", room.private ? "This is the very beginning of this private room." : "This is the very beginning of this room."),
      );
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

  function atBottom() {
    return el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 48;
  }

  function scrollToBottom() {
    el.log.scrollTop = el.log.scrollHeight;
    el.jump.hidden = true;
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
    const date = new Date(m.ts);
    const valid = !Number.isNaN(date.getTime());
    const startsGroup =
      !prev ||
      prev.username !== m.username ||
      !valid ||
      Number.isNaN(new Date(prev.ts).getTime()) ||
      date - new Date(prev.ts) > GROUP_GAP_MS ||
      dayKey(date) !== dayKey(new Date(prev.ts)) ||
      startsUnread(room, m, prev);
    const li = h("li", "msg" + (startsGroup ? " group-start" : "") + (m.username === S.me ? " mine" : ""));
    li.dataset.seq = String(m.seq);
    li.dataset.user = m.username;
    const time = h("time", "msg-time");
    if (valid) {
      time.dateTime = date.toISOString();
      time.textContent = timeFmt.format(date);
      time.title = fullFmt.format(date);
    }
    if (startsGroup) {
      li.append(avatar(m.username));
      const head = h("div", "msg-head");
      head.append(h("span", "msg-author", m.username), time);
      li.append(head);
    } else {
      time.classList.add("msg-time-side");
      li.append(time, h("span", "sr-only", m.username + ": "));
    }
    const body = h("div", "msg-text");
    appendRichText(body, m.text);
    li.append(body);
    return li;
  }

  /** The "New" divider goes before the first message after the read mark. */
  function startsUnread(room, m, prev) {
    if (room.dividerSeq === null || m.seq <= room.dividerSeq) return false;
    return !prev || prev.seq <= room.dividerSeq;
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
      li.append(h("span", "", "New"));
      out.push(li);
    }
    return out;
  }

  let renderedRoom = null;
  let renderedLastSeq = 0;

  /**
   * Re-render the message list of the current room.
   * opts.reset: room switch (scroll to the divider or the bottom);
   * opts.appended: new messages at the end (stick to the bottom if we were there);
   * opts.prepended: older history above (keep the view where it was).
   */
  function renderLog(opts = {}) {
    const room = S.rooms.get(S.current || "");
    if (!room) return;
    const list = sortedMessages(room);
    const wasAtBottom = atBottom();
    const sameRoom = renderedRoom === room.name;
    const lastRendered = el.messages.lastElementChild;
    const lastMsg = list.at(-1);

    // Fast path: only new messages after the last rendered one.
    if (sameRoom && opts.appended && lastRendered && lastMsg && lastMsg.seq > renderedLastSeq) {
      const startIdx = list.findIndex((m) => m.seq > renderedLastSeq);
      const prevMsg = startIdx > 0 ? list[startIdx - 1] : null;
      if (startIdx > 0 && prevMsg.seq === renderedLastSeq) {
        const frag = document.createDocumentFragment();
        let prev = prevMsg;
        for (const m of list.slice(startIdx)) {
          frag.append(...dividerItems(room, m, prev), messageItem(room, m, prev));
          prev = m;
        }
        el.messages.append(frag);
        renderedLastSeq = lastMsg.seq;
        afterAppend(wasAtBottom, opts.mine);
        return;
      }
    }

    const anchor = sameRoom && !opts.reset ? captureAnchor() : null;
    const focusedSeq = el.messages.contains(document.activeElement)
      ? document.activeElement.closest("li[data-seq]")?.dataset.seq
      : null;
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
    if (focusedSeq) el.messages.querySelector(`li[data-seq="${focusedSeq}"] a`)?.focus();

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
      if (opts.appended) showJump();
    }
  }

  function afterAppend(wasAtBottom, mine) {
    if (wasAtBottom || mine) scrollToBottom();
    else showJump();
  }

  function showJump() {
    el.jump.hidden = false;
  }

  let saveOutboxTimer = null;
  /** Keep the saved outbox close to the real one: a tab can be killed without `pagehide`. */
  function outboxChanged() {
    if (saveOutboxTimer) return;
    saveOutboxTimer = setTimeout(() => {
      saveOutboxTimer = null;
      saveOutbox();
    }, 1000);
  }

  function renderPending() {
    outboxChanged();
    const items = [...S.outbox.values()].filter((item) => item.room === S.current);
    const wasAtBottom = atBottom();
    const frag = document.createDocumentFragment();
    const lastSent = el.messages.lastElementChild;
    let grouped = Boolean(lastSent && lastSent.dataset.user === S.me);
    for (const item of items) {
      const room = S.rooms.get(item.room);
      let kind;
      let label;
      if (item.status === "failed") [kind, label] = ["failed", item.error || "Not sent"];
      else if (item.status !== "queued") [kind, label] = ["sending", "Sending…"];
      else if (S.conn !== "online" || !room || !room.joined) [kind, label] = ["offline", "Waiting for connection…"];
      else if (room.heldUntil > Date.now()) [kind, label] = ["slow", "Sending slowed down, will retry shortly…"];
      else [kind, label] = ["sending", "Sending…"];
      const li = h("li", "msg mine pending is-" + kind + (grouped ? "" : " group-start"));
      li.dataset.clientId = item.client_id;
      const status = h("span", "msg-status");
      status.append(icon(kind === "failed" ? "i-alert" : "i-clock"));
      status.append(h("span", "", label));
      const body = h("div", "msg-text");
      appendRichText(body, item.text);
      if (grouped) {
        li.append(h("span", "msg-time-side"), h("span", "sr-only", (S.me || "") + ": "), body, status);
        status.classList.add("msg-status-below");
      } else {
        li.append(avatar(S.me || "?"));
        const head = h("div", "msg-head");
        head.append(h("span", "msg-author", S.me || ""), status);
        li.append(head, body);
      }
      grouped = true;
      if (item.status === "failed") {
        const actions = h("div", "msg-actions");
        const retry = h("button", "btn btn-sm btn-ghost", "Retry");
        retry.type = "button";
        retry.dataset.action = "retry";
        const drop = h("button", "btn btn-sm btn-ghost", "Discard");
        drop.type = "button";
        drop.dataset.action = "discard";
        actions.append(retry, drop);
        li.append(actions);
      }
      frag.append(li);
    }
    el.pending.replaceChildren(frag);
    if (wasAtBottom) scrollToBottom();
  }

  function maybeLoadOlder() {
    if (el.log.scrollTop < LOAD_OLDER_PX) loadOlder();
  }

  // ------------------------------------------------------------- drawers
  const narrow = window.matchMedia("(max-width: 767px)");
  const finePointer = window.matchMedia("(pointer: fine)");
  const wideMembers = window.matchMedia("(min-width: 1100px)");

  function openSidebar() {
    el.app.classList.add("sidebar-open");
    el.scrim.hidden = false;
    el.openSidebar.setAttribute("aria-expanded", "true");
    const current = el.roomList.querySelector('[aria-current="page"]') || el.roomList.querySelector("button");
    if (current) current.focus();
  }

  function closeSidebar() {
    if (!el.app.classList.contains("sidebar-open")) return;
    el.app.classList.remove("sidebar-open");
    el.openSidebar.setAttribute("aria-expanded", "false");
    syncScrim();
  }

  function toggleMembers() {
    const open = !el.app.classList.contains("members-open");
    el.app.classList.toggle("members-open", open);
    el.membersBtn.setAttribute("aria-expanded", String(open));
    syncScrim();
    if (open && !wideMembers.matches) el.closeMembers.focus();
  }

  function closeMembers() {
    el.app.classList.remove("members-open");
    el.membersBtn.setAttribute("aria-expanded", "false");
    syncScrim();
  }

  function syncScrim() {
    const overlay = el.app.classList.contains("sidebar-open") || (el.app.classList.contains("members-open") && !wideMembers.matches);
    el.scrim.hidden = !overlay;
  }

  // ------------------------------------------------------------- dialogs
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
      if (res.status === 201 || res.status === 200) {
        const room = ensureRoom(name);
        room.private = isPrivate;
        room.owner = S.me;
        room.known = true;
        S.readMarks[name] = 0;
        if (isPrivate) room.members = S.me ? [S.me] : [];
        el.roomDialog.close();
        joinAll();
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
    const room = S.rooms.get(S.current || "");
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
    const room = S.rooms.get(S.current || "");
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

  // ------------------------------------------- account: password and sessions
  function openAccountDialog() {
    el.passwordForm.reset();
    el.passwordUser.value = S.me || ""; // lets a password manager file the new password
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
        el.passwordUser.value = S.me || "";
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
    const gen = S.generation;
    el.sessionsError.textContent = "";
    el.everywhere.disabled = true;
    // Our own socket is closed with CLOSE_SIGNED_OUT too, maybe before the answer arrives.
    endingNotice = "You signed out everywhere.";
    try {
      const res = await api("DELETE", "/api/sessions");
      if (res.status === 204 || res.status === 401) {
        if (gen === S.generation) sessionEnded();
        return;
      }
      el.sessionsError.textContent = errorMessage(res, `Could not sign out everywhere (${res.status}).`);
    } catch {
      el.sessionsError.textContent = "Can't reach Parley right now. Try again in a moment.";
    } finally {
      if (gen === S.generation) endingNotice = "";
      el.everywhere.disabled = false;
    }
  }

  // ------------------------------------------------------------- lifecycle
  function startApp(username) {
    S.generation++;
    S.me = username;
    S.rooms = new Map();
    S.outbox = new Map();
    S.current = null;
    S.attempt = 0;
    renderedRoom = null;
    renderedLastSeq = 0;
    loadReadMarks();
    loadOutbox();
    ensureRoom("general");
    renderMe();
    showView("app");
    selectRoom(roomFromHash() || "general", false);
    connect();
    const hashRoom = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
    refreshRooms().then(() => {
      if (ROOM_REF_RE.test(hashRoom) && S.rooms.has(hashRoom) && S.current !== hashRoom) selectRoom(hashRoom, false);
    });
    clearInterval(S.roomsTimer);
    S.roomsTimer = setInterval(() => {
      if (S.conn === "online") refreshRooms();
    }, ROOMS_REFRESH_MS);
    el.app.classList.toggle("members-open", wideMembers.matches);
    el.membersBtn.setAttribute("aria-expanded", String(wideMembers.matches));
    syncScrim();
    if (finePointer.matches) el.input.focus();
  }

  function stopApp(notice) {
    S.generation++;
    clearRetry();
    clearInterval(S.roomsTimer);
    const ws = S.ws;
    S.ws = null;
    if (ws) {
      try {
        ws.close(1000, "signed out");
      } catch {
        /* already closing */
      }
    }
    for (const room of S.rooms.values()) for (const timer of room.typing.values()) clearTimeout(timer);
    S.rooms = new Map();
    S.outbox = new Map();
    saveOutbox(); // signing out forgets what was not sent
    S.me = null;
    S.current = null;
    S.readMarks = {};
    S.firstVisit = true;
    el.messages.replaceChildren();
    el.pending.replaceChildren();
    el.roomList.replaceChildren();
    el.input.value = "";
    el.app.classList.remove("sidebar-open", "members-open");
    document.title = "Parley";
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

  // ------------------------------------------------------------- events
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
    if (btn) selectRoom(btn.dataset.room, keyboard || finePointer.matches);
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
    updateCount();
    noteTyping();
  });

  el.pending.addEventListener("click", (event) => {
    const btn = event.target.closest("button[data-action]");
    const li = event.target.closest("li[data-client-id]");
    if (!btn || !li) return;
    if (btn.dataset.action === "retry") retryItem(li.dataset.clientId);
    else discardItem(li.dataset.clientId);
  });

  el.log.addEventListener("scroll", () => {
    maybeLoadOlder();
    if (atBottom()) el.jump.hidden = true;
  }, { passive: true });
  el.jump.addEventListener("click", () => {
    scrollToBottom();
    el.input.focus();
  });

  el.retryNow.addEventListener("click", retryNow);
  el.openSidebar.addEventListener("click", openSidebar);
  el.closeSidebar.addEventListener("click", () => {
    closeSidebar();
    el.openSidebar.focus();
  });
  el.scrim.addEventListener("click", () => {
    closeSidebar();
    closeMembers();
  });
  el.membersBtn.addEventListener("click", toggleMembers);
  el.closeMembers.addEventListener("click", () => {
    closeMembers();
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
        closeSidebar();
        el.openSidebar.focus();
      } else if (el.app.classList.contains("members-open") && !wideMembers.matches) {
        closeMembers();
        el.membersBtn.focus();
      }
    }
    // Alt+↑ / Alt+↓: previous / next room from anywhere.
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown") && !el.app.hidden) {
      const names = sortedRooms().map((r) => r.name);
      const i = names.indexOf(S.current || "");
      if (i < 0 || names.length < 2) return;
      event.preventDefault();
      selectRoom(names[(i + (event.key === "ArrowDown" ? 1 : names.length - 1)) % names.length], true);
    }
  });

  window.addEventListener("hashchange", () => {
    const name = roomFromHash();
    if (name && name !== S.current) selectRoom(name, false);
  });
  window.addEventListener("online", () => {
    if (!el.app.hidden && !S.ws) connect();
  });
  window.addEventListener("offline", () => {
    if (el.app.hidden) return;
    // The network is gone: a socket that looks open is most likely dead (TCP would take
    // minutes to notice). Drop it now; `online` brings a fresh one.
    if (S.ws) dropSocket();
    clearRetry();
    setConn("offline");
  });
  window.addEventListener("pagehide", saveOutbox);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") saveOutbox();
    if (el.app.hidden || document.visibilityState !== "visible") return;
    const room = S.rooms.get(S.current || "");
    if (room) markRead(room);
    renderRooms();
    // Coming back to the tab: don't make the person wait out a long backoff.
    if (!S.ws && S.conn === "reconnecting" && S.retryAt - Date.now() > 2000) connect();
    if (S.conn === "online") refreshRooms();
  });
  narrow.addEventListener("change", () => {
    closeSidebar();
  });
  wideMembers.addEventListener("change", () => {
    el.app.classList.toggle("members-open", wideMembers.matches);
    el.membersBtn.setAttribute("aria-expanded", String(wideMembers.matches));
    syncScrim();
  });

  boot();
})();
