/* The admin page, the pure parts: the API paths, paging, what each user's buttons do and
 * what they ask first, an invite's state and sign-up link, the audit log's sentences, times.
 * DOM-free (unit-tested under Node); the page itself (adminpage.mjs) draws them. */

export const PAGE_LIMIT = 50; // users and audit entries asked for at once (the server allows 1..100)
export const INVITE_PARAM = "invite"; // the sign-up link's query parameter: /?invite=CODE
const INVITE_RE = /^[A-Za-z0-9_-]{1,128}$/;

/** How long a new invite lasts: the choices offered, the server's default (7 days) first. */
export const EXPIRY_CHOICES = [
  { seconds: 7 * 86400, label: "7 days" },
  { seconds: 3600, label: "1 hour" },
  { seconds: 86400, label: "1 day" },
  { seconds: 30 * 86400, label: "30 days" },
];

/** The registration modes, as the settings show them. */
export const REGISTRATION_MODES = [
  { mode: "open", label: "Open", text: "Anyone who reaches the server can create an account." },
  { mode: "invite", label: "Invite only", text: "A new account needs an invite code from an admin." },
  { mode: "closed", label: "Closed", text: "Nobody can sign up; accounts are made with parley admin create-user." },
];

// ----------------------------------------------------------------- paths
/** GET /api/admin/users: `q` a part of the name (empty: everyone), `after` the last name held. */
export function usersPath({ q = "", after = "", limit = PAGE_LIMIT } = {}) {
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (after) params.set("after", after);
  params.set("limit", String(limit));
  return "/api/admin/users?" + params;
}

/** GET /api/admin/audit: `before` the oldest entry id held (none: the newest page). */
export function auditPath({ before = null, limit = PAGE_LIMIT } = {}) {
  const params = new URLSearchParams();
  if (before !== null && before !== undefined) params.set("before", String(before));
  params.set("limit", String(limit));
  return "/api/admin/audit?" + params;
}

/** The path of a user's role or ban: PUT/DELETE …/admin, POST/DELETE …/ban. */
export function userPath(username, what) {
  return `/api/admin/users/${encodeURIComponent(username)}/${what}`;
}

// ---------------------------------------------------------------- paging
/**
 * The rows of a paged list: `add(page)` appends a page (rows already held, by `keyOf`, are
 * skipped: a row that moved between two pages shows once); `more` says whether a full page
 * came last, so that another may follow.
 */
export class PagedList {
  constructor(keyOf, limit = PAGE_LIMIT) {
    this.keyOf = keyOf;
    this.limit = limit;
    this.clear();
  }

  clear() {
    this.rows = [];
    this.keys = new Set();
    this.more = false;
  }

  add(page) {
    const rows = Array.isArray(page) ? page : [];
    for (const row of rows) {
      const key = this.keyOf(row);
      if (key === undefined || key === null || this.keys.has(key)) continue;
      this.keys.add(key);
      this.rows.push(row);
    }
    this.more = rows.length >= this.limit;
  }

  get last() {
    return this.rows.length ? this.rows[this.rows.length - 1] : null;
  }

  /** Put `row` in place of the one with its key (after a ban, a grant…). */
  replace(row) {
    const key = this.keyOf(row);
    const i = this.rows.findIndex((r) => this.keyOf(r) === key);
    if (i >= 0) this.rows[i] = row;
  }

  remove(key) {
    this.rows = this.rows.filter((r) => this.keyOf(r) !== key);
    this.keys.delete(key);
  }
}

/** The well-formed users of an answer ({username, admin, banned, created_at}). */
export function validUsers(data) {
  const users = data && Array.isArray(data.users) ? data.users : [];
  return users.filter((u) => u && typeof u.username === "string").map((u) => ({ ...u, admin: u.admin === true, banned: u.banned === true }));
}

/** The well-formed audit entries of an answer. */
export function validEntries(data) {
  const entries = data && Array.isArray(data.entries) ? data.entries : [];
  return entries.filter((e) => e && (typeof e.id === "number" || typeof e.id === "string") && typeof e.action === "string");
}

/** The well-formed invites of an answer. */
export function validInvites(data) {
  const invites = data && Array.isArray(data.invites) ? data.invites : [];
  return invites.filter((i) => i && typeof i.code === "string");
}

// ------------------------------------------------------------------ users
/**
 * The two actions offered on a user: the role (grant or revoke) and the ban (ban or unban),
 * each as {action, label, method, path}.
 */
export function userActions(user) {
  const name = user.username;
  return [
    user.admin
      ? { action: "revoke", label: "Remove admin", method: "DELETE", path: userPath(name, "admin") }
      : { action: "grant", label: "Make admin", method: "PUT", path: userPath(name, "admin") },
    user.banned
      ? { action: "unban", label: "Unban", method: "DELETE", path: userPath(name, "ban") }
      : { action: "ban", label: "Ban", method: "POST", path: userPath(name, "ban") },
  ];
}

/** What the in-page confirmation asks before `action` on `username`: {title, text, ok}. */
export function confirmation(action, username) {
  switch (action) {
    case "ban":
      return {
        title: `Ban ${username}?`,
        text: `${username} is signed out everywhere at once and can't sign in again until unbanned.`,
        ok: "Ban",
      };
    case "unban":
      return { title: `Unban ${username}?`, text: `${username} can sign in again.`, ok: "Unban" };
    case "grant":
      return {
        title: `Make ${username} an admin?`,
        text: `${username} will be able to ban people, change who can sign up, and moderate every room.`,
        ok: "Make admin",
      };
    case "revoke":
      return { title: `Remove ${username}'s admin role?`, text: `${username} keeps the account, without admin rights.`, ok: "Remove admin" };
    default:
      return { title: "Are you sure?", text: "", ok: "OK" };
  }
}

/** The user after `action` succeeded (the server answers 204, with no body). */
export function afterAction(user, action) {
  const changes = { grant: { admin: true }, revoke: { admin: false }, ban: { banned: true }, unban: { banned: false } };
  return { ...user, ...(changes[action] || {}) };
}

/** What to say when `action` was refused with HTTP `status`; the server's words when it has some. */
export function refusal(action, username, status, serverMessage) {
  if (status === 404) return `There is no user named “${username}” any more.`;
  if (serverMessage) return serverMessage;
  if (status === 409) return `That would leave the server without an admin, or lock you out: nothing changed.`;
  if (status === 403) return "Only admins can do that.";
  return `Could not ${action} ${username} (${status}).`;
}

// ---------------------------------------------------------------- invites
/** An invite's state at `now` (ms): "used", "expired" or "open". */
export function inviteState(invite, now) {
  if (invite.used_by || invite.used_at) return "used";
  const expires = toDate(invite.expires_at);
  if (expires && expires.getTime() <= now) return "expired";
  return "open";
}

/** The sign-up link that carries `code`, on the page at `origin` ("https://chat.example"). */
export function signupLink(origin, code) {
  return `${origin}/?${INVITE_PARAM}=${encodeURIComponent(code)}`;
}

/** The invite code in a page address's query (`location.search`), or "" when none is usable. */
export function inviteFromSearch(search) {
  const code = new URLSearchParams(search || "").get(INVITE_PARAM) || "";
  return INVITE_RE.test(code) ? code : "";
}

/** The query string without the invite (once used, the address bar forgets it). */
export function searchWithoutInvite(search) {
  const params = new URLSearchParams(search || "");
  params.delete(INVITE_PARAM);
  const rest = params.toString();
  return rest ? "?" + rest : "";
}

// ------------------------------------------------------------------ audit
/** Each audit action as a sentence after its actor: {target} and {room} are filled in. */
const SENTENCES = {
  ban: "banned {target}",
  unban: "unbanned {target}",
  grant: "made {target} an admin",
  revoke: "took the admin role from {target}",
  invite: "created the invite {target}",
  invite_revoke: "revoked the invite {target}",
  registration: "set registration to {target}",
  delete_message: "deleted a message by {target} in {room}",
  remove_member: "removed {target} from {room}",
  topic: "set the topic of {room} to “{target}”", // an admin in a room they do not own
};

/**
 * An audit entry as a sentence, in parts: [{text, kind}] where kind is "actor", "target",
 * "room" or "" (the words between). An action the page does not know shows by its name.
 */
export function auditSentence(entry) {
  const target = entry.target === null || entry.target === undefined ? "" : String(entry.target);
  const room = typeof entry.room === "string" ? entry.room : "";
  let sentence = SENTENCES[entry.action];
  if (!sentence) sentence = `${entry.action}${target ? " {target}" : ""}${room ? " in {room}" : ""}`;
  const parts = [{ text: String(entry.actor ?? "?"), kind: "actor" }];
  let words = " ";
  for (const piece of sentence.split(/(\{target\}|\{room\})/)) {
    if (piece === "{target}" || piece === "{room}") {
      if (words) parts.push({ text: words, kind: "" });
      words = "";
      parts.push(piece === "{target}" ? { text: target, kind: "target" } : { text: "#" + room, kind: "room" });
    } else {
      words += piece;
    }
  }
  if (words) parts.push({ text: words, kind: "" });
  return parts;
}

/** The label of an audit action (for the entry's badge). */
export function actionLabel(action) {
  const labels = {
    ban: "Ban",
    unban: "Unban",
    grant: "Grant",
    revoke: "Revoke",
    invite: "Invite",
    invite_revoke: "Invite revoked",
    registration: "Registration",
    delete_message: "Delete",
    remove_member: "Remove",
    topic: "Topic",
  };
  return labels[action] ?? String(action);
}

// ------------------------------------------------------------------ times
/** A server time (ISO 8601, or seconds or ms since the epoch) as a Date, or null. */
export function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = typeof value === "number" ? new Date(value < 1e12 ? value * 1000 : value) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

const UNITS = [
  ["year", 365 * 86400],
  ["month", 30 * 86400],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];

/** `date` relative to `now` (ms), in words: "in 7 days", "3 hours ago", "now". */
export function relativeTime(date, now, locale = undefined) {
  const fmt = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  const seconds = (date.getTime() - now) / 1000;
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return fmt.format(Math.round(seconds / size), unit);
  }
  return fmt.format(0, "second");
}

/** A debounced call: `fn` runs once `ms` after the last `call()`; `flush()` runs it now. */
export function debounce(fn, ms, timers = { setTimeout: (f, t) => setTimeout(f, t), clearTimeout: (id) => clearTimeout(id) }) {
  let timer = null;
  const run = () => {
    timers.clearTimeout(timer);
    timer = null;
    fn();
  };
  return {
    call() {
      timers.clearTimeout(timer);
      timer = timers.setTimeout(run, ms);
    },
    flush: run,
    cancel() {
      timers.clearTimeout(timer);
      timer = null;
    },
  };
}
