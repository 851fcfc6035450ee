/* The admin page: users (search, ban, grant), invites, the registration mode and the audit
 * log, over /api/admin/* and /api/invites. Shown only to admins (hello's and /api/me's
 * "admin"); the server refuses everyone else anyway, and a 403 here hides the page. Every
 * text goes in through textContent. The pure parts are in admin.mjs; the page binds this
 * module with `bindAdmin`. */

import { api, errorMessage } from "./api.mjs";
import {
  EXPIRY_CHOICES,
  PagedList,
  REGISTRATION_MODES,
  actionLabel,
  afterAction,
  auditPath,
  auditSentence,
  confirmation,
  debounce,
  inviteState,
  refusal,
  relativeTime,
  signupLink,
  toDate,
  userActions,
  usersPath,
  validEntries,
  validInvites,
  validUsers,
} from "./admin.mjs";
import { h } from "./dom.mjs";
import { avatar, el, showView } from "./views.mjs";

const SEARCH_WAIT_MS = 250; // search once typing pauses this long
const HISTORY_STATE = "parley-admin"; // the history entry the page pushes: Back leaves it

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  link: el.adminLink,
  view: el.adminView,
  back: $("admin-back"),
  tabList: $("admin-tabs"),
  search: /** @type {HTMLInputElement} */ ($("admin-user-search")),
  userList: $("admin-user-list"),
  usersError: $("admin-users-error"),
  usersStatus: $("admin-users-status"),
  usersMore: $("admin-users-more"),
  inviteForm: /** @type {HTMLFormElement} */ ($("admin-invite-form")),
  inviteExpiry: /** @type {HTMLSelectElement} */ ($("admin-invite-expiry")),
  inviteCreate: /** @type {HTMLButtonElement} */ ($("admin-invite-create")),
  newInvite: $("admin-new-invite"),
  newCode: $("admin-new-code"),
  newLink: /** @type {HTMLInputElement} */ ($("admin-new-link")),
  copyLink: $("admin-copy-link"),
  copyStatus: $("admin-copy-status"),
  inviteList: $("admin-invite-list"),
  invitesError: $("admin-invites-error"),
  invitesStatus: $("admin-invites-status"),
  modes: $("admin-modes"),
  regError: $("admin-reg-error"),
  regStatus: $("admin-reg-status"),
  auditList: $("admin-audit-list"),
  auditError: $("admin-audit-error"),
  auditStatus: $("admin-audit-status"),
  auditMore: $("admin-audit-more"),
};
const tabs = [...ui.tabList.querySelectorAll("[role=tab]")];

/**
 * What this module needs from the page: {session(), sessionEnded(), confirm({title, text,
 * ok}) → Promise<boolean>, toast(text), leaveChat(), backToChat(), roleChanged(admin) (the
 * server said the person is no longer an admin: it calls `setAdmin` back)}.
 */
let page = null;
let isAdmin = false;
const users = new PagedList((u) => u.username.toLowerCase());
const entries = new PagedList((e) => e.id);
let query = "";
const asked = { users: 0, invites: 0, audit: 0, settings: 0 }; // an older answer is dropped
let registration = "";
const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const timeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const searchSoon = debounce(() => {
  query = ui.search.value.trim();
  loadUsers(true);
}, SEARCH_WAIT_MS);

// ------------------------------------------------------------ the view
/** Whether the signed-in person is an admin: the link shows, or the page goes away. */
export function setAdmin(admin) {
  isAdmin = admin;
  ui.link.hidden = !admin;
  if (!admin && !ui.view.hidden) closeAdmin();
}

export function openAdmin() {
  if (!isAdmin) return;
  page.leaveChat();
  showView("admin");
  if (history.state !== HISTORY_STATE) history.pushState(HISTORY_STATE, "");
  const tab = tabs.find((t) => t.getAttribute("aria-selected") === "true") || tabs[0];
  selectTab(tab);
  tab.focus();
}

/** Back to the chat; by the browser's Back when the page pushed its own history entry. */
function leave() {
  if (history.state === HISTORY_STATE) history.back();
  else closeAdmin();
}

function closeAdmin() {
  if (ui.view.hidden) return;
  searchSoon.cancel();
  page.backToChat();
}

/** Signed out: nothing of the last admin's view stays. */
export function resetAdmin() {
  setAdmin(false);
  searchSoon.cancel();
  for (const key of Object.keys(asked)) asked[key]++;
  users.clear();
  entries.clear();
  query = "";
  registration = "";
  ui.search.value = "";
  ui.newInvite.hidden = true;
  for (const list of [ui.userList, ui.inviteList, ui.auditList]) list.replaceChildren();
  const lines = [ui.usersError, ui.usersStatus, ui.invitesError, ui.invitesStatus, ui.regError, ui.regStatus];
  for (const line of [...lines, ui.auditError, ui.auditStatus, ui.copyStatus]) line.textContent = "";
  selectTab(tabs[0], false);
}

function selectTab(tab, load = true) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (load) LOADERS[tab.getAttribute("aria-controls")]();
}

const LOADERS = {
  "admin-users": () => loadUsers(true),
  "admin-invites": () => loadInvites(),
  "admin-registration": () => loadSettings(),
  "admin-audit": () => loadAudit(true),
};

/** ←/→ (Home/End) move along the tabs and open the one reached (the ARIA tabs pattern). */
function onTabKey(event) {
  const i = tabs.indexOf(/** @type {HTMLElement} */ (event.target));
  if (i < 0) return;
  const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
  selectTab(next);
  next.focus();
}

/**
 * One call to the admin API. Resolves to the answer, or null when it was handled here: the
 * session ended (401), the person is no longer an admin (403: the role was taken away since
 * hello; the page goes), the server is unreachable (`errorLine` says so), or the answer
 * came after a sign-out (it belongs to nobody).
 */
async function call(method, path, body, errorLine) {
  const owner = page.session();
  let res;
  try {
    res = await api(method, path, body);
  } catch {
    if (owner === page.session()) errorLine.textContent = "Can't reach Parley right now. Try again in a moment.";
    return null;
  }
  if (owner !== page.session()) return null;
  if (res.status === 401) {
    page.sessionEnded();
    return null;
  }
  if (res.status === 403) {
    if (isAdmin) page.toast("You are not an admin any more.");
    page.roleChanged(false);
    return null;
  }
  return res;
}

// ----------------------------------------------------------------- users
async function loadUsers(fromStart) {
  const id = ++asked.users;
  const after = fromStart ? "" : users.last?.username || "";
  ui.usersStatus.textContent = "Loading…";
  ui.usersMore.disabled = true;
  const res = await call("GET", usersPath({ q: query, after }), undefined, ui.usersError);
  if (id !== asked.users) return;
  ui.usersMore.disabled = false;
  ui.usersStatus.textContent = "";
  if (!res) return;
  if (res.status !== 200) {
    ui.usersError.textContent = errorMessage(res, `Could not list the users (${res.status}).`);
    return;
  }
  ui.usersError.textContent = "";
  if (fromStart) users.clear();
  users.add(validUsers(res.data));
  renderUsers();
}

function renderUsers() {
  const me = (page.session().chat.me || "").toLowerCase();
  ui.userList.replaceChildren(...users.rows.map((u) => userRow(u, u.username.toLowerCase() === me)));
  ui.usersMore.hidden = !users.more;
  if (!users.rows.length) ui.usersStatus.textContent = query ? `No user’s name contains “${query}”.` : "No users yet.";
}

function userRow(user, isMe) {
  const li = h("li", "admin-row admin-user" + (user.banned ? " is-banned" : ""));
  li.dataset.username = user.username;
  const who = h("div", "admin-row-main");
  const name = h("div", "admin-user-name");
  name.append(h("span", "admin-name", user.username));
  if (isMe) name.append(h("span", "tag tag-you", "you"));
  if (user.admin) name.append(h("span", "tag tag-admin", "Admin"));
  if (user.banned) name.append(h("span", "tag tag-banned", "Banned"));
  who.append(name);
  const joined = toDate(user.created_at);
  if (joined) who.append(h("div", "admin-row-sub", `Joined ${dateFmt.format(joined)}`));
  const actions = h("div", "admin-row-actions");
  for (const act of userActions(user)) {
    const danger = act.action === "ban" || act.action === "revoke";
    const btn = rowButton(act.label, act.action, `${act.label}: ${user.username}`, danger);
    btn.dataset.kind = act.action === "grant" || act.action === "revoke" ? "role" : "ban";
    actions.append(btn);
  }
  li.append(avatar(user.username), who, actions);
  return li;
}

/** A row's button: `action` for the list's click handler, `name` what a screen reader says. */
function rowButton(label, action, name, danger = false) {
  const btn = h("button", "btn btn-sm btn-ghost" + (danger ? " btn-ghost-danger" : ""), label);
  btn.type = "button";
  btn.dataset.action = action;
  btn.setAttribute("aria-label", name);
  return btn;
}

async function onUserClick(event) {
  const btn = event.target.closest("button[data-action]");
  const li = event.target.closest("li[data-username]");
  if (!btn || !li) return;
  const user = users.rows.find((u) => u.username === li.dataset.username);
  const act = user && userActions(user).find((a) => a.action === btn.dataset.action);
  if (!act) return;
  const ok = await page.confirm(confirmation(act.action, user.username));
  if (!ok) return btn.focus();
  ui.usersError.textContent = "";
  const res = await call(act.method, act.path, undefined, ui.usersError);
  if (!res) return;
  if (res.status !== 204 && res.status !== 200) {
    ui.usersError.textContent = refusal(act.action, user.username, res.status, errorMessage(res, ""));
    return btn.focus();
  }
  users.replace(afterAction(user, act.action));
  renderUsers();
  page.toast(DONE[act.action](user.username));
  const again = ui.userList.querySelector(`li[data-username="${CSS.escape(user.username)}"] button[data-kind="${btn.dataset.kind}"]`);
  if (again) again.focus();
  const me = (page.session().chat.me || "").toLowerCase();
  if (act.action === "revoke" && user.username.toLowerCase() === me) page.roleChanged(false);
}

const DONE = {
  ban: (name) => `${name} is banned and was signed out.`,
  unban: (name) => `${name} can sign in again.`,
  grant: (name) => `${name} is now an admin.`,
  revoke: (name) => `${name} is no longer an admin.`,
};

// --------------------------------------------------------------- invites
async function loadInvites() {
  const id = ++asked.invites;
  const res = await call("GET", "/api/invites", undefined, ui.invitesError);
  if (id !== asked.invites || !res) return;
  if (res.status !== 200) {
    ui.invitesError.textContent = errorMessage(res, `Could not list the invites (${res.status}).`);
    return;
  }
  renderInvites(validInvites(res.data));
}

function renderInvites(invites) {
  const now = Date.now();
  ui.inviteList.replaceChildren(...invites.map((invite) => inviteRow(invite, now)));
  ui.invitesStatus.textContent = invites.length ? "" : "No invites yet.";
}

const STATE_LABELS = { open: "Open", used: "Used", expired: "Expired" };

function inviteRow(invite, now) {
  const state = inviteState(invite, now);
  const li = h("li", "admin-row admin-invite");
  li.dataset.code = invite.code;
  li.dataset.state = state;
  const main = h("div", "admin-row-main");
  const head = h("div", "admin-user-name");
  head.append(h("code", "invite-code", invite.code), h("span", `tag tag-${state}`, STATE_LABELS[state]));
  main.append(head, h("div", "admin-row-sub", inviteDetails(invite, state, now)));
  const actions = h("div", "admin-row-actions");
  if (state === "open") {
    actions.append(
      rowButton("Copy link", "copy", `Copy the sign-up link of ${invite.code}`),
      rowButton("Revoke", "revoke", `Revoke the invite ${invite.code}`, true),
    );
  }
  li.append(main, actions);
  return li;
}

function inviteDetails(invite, state, now) {
  const when = (value) => {
    const date = toDate(value);
    return date ? relativeTime(date, now) : "";
  };
  const by = `created ${invite.created_by ? `by ${invite.created_by} ` : ""}${when(invite.created_at)}`;
  if (state === "used") return `Used by ${invite.used_by ?? "someone"} ${when(invite.used_at)} · ${by}`;
  if (state === "expired") return `Expired ${when(invite.expires_at)} · ${by}`;
  return `Expires ${when(invite.expires_at)} · ${by}`;
}

async function createInvite(event) {
  event.preventDefault();
  if (ui.inviteCreate.disabled) return;
  ui.invitesError.textContent = "";
  ui.inviteCreate.disabled = true;
  try {
    const res = await call("POST", "/api/invites", { expires_in: Number(ui.inviteExpiry.value) }, ui.invitesError);
    if (!res) return;
    if (res.status !== 201 || !res.data || typeof res.data.code !== "string") {
      ui.invitesError.textContent = errorMessage(res, `Could not create an invite (${res.status}).`);
      return;
    }
    ui.newCode.textContent = res.data.code;
    ui.newLink.value = signupLink(location.origin, res.data.code);
    ui.copyStatus.textContent = "";
    ui.newInvite.hidden = false;
    ui.copyLink.focus(); // copying is the person's choice: the clipboard is theirs
    loadInvites();
  } finally {
    ui.inviteCreate.disabled = false;
  }
}

/** Show the sign-up link of `code` in the box, and copy it. */
async function showLink(code) {
  ui.newCode.textContent = code;
  ui.newLink.value = signupLink(location.origin, code);
  ui.copyStatus.textContent = "";
  ui.newInvite.hidden = false;
  await copyLink();
}

async function copyLink() {
  try {
    await navigator.clipboard.writeText(ui.newLink.value);
    ui.copyStatus.textContent = "Link copied.";
  } catch {
    // No clipboard (a page not served over https, or permission refused): copy it by hand.
    ui.newLink.select();
    ui.copyStatus.textContent = "Press Ctrl+C to copy the selected link.";
  }
}

async function onInviteClick(event) {
  const btn = event.target.closest("button[data-action]");
  const li = event.target.closest("li[data-code]");
  if (!btn || !li) return;
  const code = li.dataset.code;
  if (btn.dataset.action === "copy") return showLink(code);
  const ok = await page.confirm({ title: "Revoke this invite?", text: `The code ${code} will stop working.`, ok: "Revoke" });
  if (!ok) return btn.focus();
  const res = await call("DELETE", `/api/invites/${encodeURIComponent(code)}`, undefined, ui.invitesError);
  if (!res) return;
  if (res.status !== 204 && res.status !== 404) {
    ui.invitesError.textContent = errorMessage(res, `Could not revoke the invite (${res.status}).`);
    return;
  }
  if (ui.newCode.textContent === code) ui.newInvite.hidden = true;
  page.toast(`The invite ${code} was revoked.`);
  await loadInvites();
  ui.inviteCreate.focus();
}

// ---------------------------------------------------------- registration
function buildModes() {
  for (const { mode, label, text } of REGISTRATION_MODES) {
    const option = h("label", "admin-mode");
    const input = h("input");
    input.type = "radio";
    input.name = "registration";
    input.value = mode;
    input.setAttribute("aria-label", label); // the name; what the mode means is its description
    const hint = h("span", "hint", text);
    hint.id = `admin-mode-${mode}-hint`;
    input.setAttribute("aria-describedby", hint.id);
    const words = h("span", "admin-mode-text");
    words.append(h("strong", "", label), hint);
    option.append(input, words);
    ui.modes.append(option);
  }
}

function showMode(mode) {
  registration = mode;
  for (const input of ui.modes.querySelectorAll("input")) input.checked = input.value === mode;
}

async function loadSettings() {
  const id = ++asked.settings;
  const res = await call("GET", "/api/admin/settings", undefined, ui.regError);
  if (id !== asked.settings || !res) return;
  if (res.status !== 200 || !res.data) {
    ui.regError.textContent = errorMessage(res, `Could not read the settings (${res.status}).`);
    return;
  }
  ui.regError.textContent = "";
  showMode(res.data.registration);
}

async function changeMode(event) {
  const mode = event.target.value;
  const before = registration;
  const label = REGISTRATION_MODES.find((m) => m.mode === mode)?.label ?? mode;
  ui.regError.textContent = "";
  ui.regStatus.textContent = "Saving…";
  const id = ++asked.settings;
  const res = await call("PATCH", "/api/admin/settings", { registration: mode }, ui.regError);
  if (id !== asked.settings) return;
  if (!res || res.status !== 200) {
    if (res) ui.regError.textContent = errorMessage(res, `Could not change the registration (${res.status}).`);
    ui.regStatus.textContent = "";
    showMode(before);
    return;
  }
  showMode(res.data?.registration ?? mode);
  ui.regStatus.textContent = `Registration is now: ${label}.`;
}

// ----------------------------------------------------------------- audit
async function loadAudit(fromStart) {
  const id = ++asked.audit;
  const before = fromStart ? null : (entries.last?.id ?? null);
  ui.auditStatus.textContent = "Loading…";
  ui.auditMore.disabled = true;
  const res = await call("GET", auditPath({ before }), undefined, ui.auditError);
  if (id !== asked.audit) return;
  ui.auditMore.disabled = false;
  ui.auditStatus.textContent = "";
  if (!res) return;
  if (res.status !== 200) {
    ui.auditError.textContent = errorMessage(res, `Could not read the audit log (${res.status}).`);
    return;
  }
  ui.auditError.textContent = "";
  if (fromStart) entries.clear();
  entries.add(validEntries(res.data));
  const now = Date.now();
  ui.auditList.replaceChildren(...entries.rows.map((e) => auditRow(e, now)));
  ui.auditMore.hidden = !entries.more;
  if (!entries.rows.length) ui.auditStatus.textContent = "Nothing yet: bans, role changes, invites and moderation show here.";
}

function auditRow(entry, now) {
  const li = h("li", "admin-row audit-entry");
  li.dataset.action = entry.action;
  const text = h("p", "audit-text");
  const codeTarget = entry.action === "invite" || entry.action === "invite_revoke";
  for (const part of auditSentence(entry)) {
    if (!part.kind) text.append(document.createTextNode(part.text));
    else if (part.kind === "target" && codeTarget) text.append(h("code", "invite-code", part.text));
    else text.append(h(part.kind === "room" ? "span" : "strong", `audit-${part.kind}`, part.text));
  }
  const main = h("div", "admin-row-main");
  main.append(text);
  const when = toDate(entry.ts);
  if (when) {
    const time = h("time", "admin-row-sub", `${timeFmt.format(when)} · ${relativeTime(when, now)}`);
    time.dateTime = when.toISOString();
    main.append(time);
  }
  li.append(h("span", "tag tag-action", actionLabel(entry.action)), main);
  return li;
}

// ---------------------------------------------------------------- wiring
export function bindAdmin(p) {
  page = p;
  for (const { seconds, label } of EXPIRY_CHOICES) {
    const option = h("option", "", label);
    option.value = String(seconds);
    ui.inviteExpiry.append(option);
  }
  buildModes();
  ui.link.addEventListener("click", openAdmin);
  ui.back.addEventListener("click", leave);
  ui.tabList.addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (tab) selectTab(tab);
  });
  ui.tabList.addEventListener("keydown", onTabKey);
  ui.search.addEventListener("input", () => searchSoon.call());
  ui.search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      searchSoon.flush();
    }
  });
  ui.usersMore.addEventListener("click", () => loadUsers(false));
  ui.userList.addEventListener("click", onUserClick);
  ui.inviteForm.addEventListener("submit", createInvite);
  ui.copyLink.addEventListener("click", copyLink);
  ui.inviteList.addEventListener("click", onInviteClick);
  ui.modes.addEventListener("change", changeMode);
  ui.auditMore.addEventListener("click", () => loadAudit(false));
  // The browser's Back leaves the page the way "Back to chat" does; Forward comes back.
  window.addEventListener("popstate", () => {
    if (history.state !== HISTORY_STATE) closeAdmin();
    else if (ui.view.hidden && !el.app.hidden) openAdmin();
  });
}
