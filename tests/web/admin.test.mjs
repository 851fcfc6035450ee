import assert from "node:assert/strict";
import { test } from "node:test";

import {
  EXPIRY_CHOICES,
  PagedList,
  afterAction,
  auditPath,
  auditSentence,
  confirmation,
  debounce,
  inviteFromSearch,
  inviteState,
  refusal,
  relativeTime,
  searchWithoutInvite,
  signupLink,
  toDate,
  userActions,
  usersPath,
  validEntries,
  validInvites,
  validUsers,
} from "../../src/parley/web/admin.mjs";

const NOW = Date.parse("2026-11-27T12:00:00Z");
const sentence = (entry) => auditSentence(entry).map((p) => p.text).join("");

test("the users path carries the search, the cursor and the limit, encoded", () => {
  assert.equal(usersPath(), "/api/admin/users?limit=50");
  assert.equal(usersPath({ q: "a&b c", after: "bob.x", limit: 10 }), "/api/admin/users?q=a%26b+c&after=bob.x&limit=10");
});

test("the audit path pages by the oldest id held", () => {
  assert.equal(auditPath(), "/api/admin/audit?limit=50");
  assert.equal(auditPath({ before: 0 }), "/api/admin/audit?before=0&limit=50", "id 0 is a cursor too");
  assert.equal(auditPath({ before: 41, limit: 5 }), "/api/admin/audit?before=41&limit=5");
});

test("a paged list appends pages, skips rows it holds, and knows whether more may follow", () => {
  const list = new PagedList((u) => u.username, 2);
  list.add([{ username: "amy" }, { username: "bob" }]);
  assert.equal(list.more, true, "a full page: there may be more");
  assert.equal(list.last.username, "bob");
  list.add([{ username: "bob" }]);
  assert.deepEqual(list.rows.map((u) => u.username), ["amy", "bob"], "a row seen twice shows once");
  assert.equal(list.more, false, "a short page is the last");
  list.replace({ username: "amy", banned: true });
  assert.equal(list.rows[0].banned, true);
  list.remove("amy");
  assert.deepEqual(list.rows.map((u) => u.username), ["bob"]);
  list.add("not a page");
  assert.equal(list.more, false);
  list.clear();
  assert.equal(list.last, null);
});

test("answers are checked: rows without their key are left out, flags are booleans", () => {
  assert.deepEqual(validUsers({ users: [null, { username: 3 }, { username: "amy", admin: "yes" }] }), [
    { username: "amy", admin: false, banned: false },
  ]);
  assert.deepEqual(validUsers(null), []);
  assert.deepEqual(validEntries({ entries: [{ id: 1, action: "ban" }, { id: 2 }, { action: "ban" }] }), [{ id: 1, action: "ban" }]);
  assert.deepEqual(validInvites({ invites: [{ code: "abc" }, { code: null }] }), [{ code: "abc" }]);
});

test("a user's actions: grant or revoke, ban or unban, each with its method and path", () => {
  const plain = userActions({ username: "a b", admin: false, banned: false });
  assert.deepEqual(
    plain.map((a) => [a.action, a.method, a.path]),
    [
      ["grant", "PUT", "/api/admin/users/a%20b/admin"],
      ["ban", "POST", "/api/admin/users/a%20b/ban"],
    ],
  );
  const other = userActions({ username: "amy", admin: true, banned: true });
  assert.deepEqual(
    other.map((a) => [a.action, a.method, a.path, a.label]),
    [
      ["revoke", "DELETE", "/api/admin/users/amy/admin", "Remove admin"],
      ["unban", "DELETE", "/api/admin/users/amy/ban", "Unban"],
    ],
  );
});

test("each action asks first, naming the person; the user afterwards", () => {
  for (const action of ["ban", "unban", "grant", "revoke"]) {
    const ask = confirmation(action, "sam");
    assert.match(ask.title, /sam/);
    assert.ok(ask.ok.length > 0);
  }
  assert.equal(confirmation("ban", "sam").ok, "Ban");
  const sam = { username: "sam", admin: false, banned: false };
  assert.deepEqual(afterAction(sam, "ban"), { ...sam, banned: true });
  assert.deepEqual(afterAction(afterAction(sam, "grant"), "revoke"), sam);
  assert.deepEqual(afterAction(sam, "unknown"), sam);
});

test("a refusal says what the server said, or what the status means", () => {
  assert.equal(refusal("revoke", "amy", 409, "amy is the last admin"), "amy is the last admin");
  assert.match(refusal("revoke", "amy", 409, ""), /nothing changed/);
  assert.match(refusal("ban", "zed", 404, "not found"), /no user named “zed”/);
  assert.match(refusal("ban", "amy", 500, ""), /\(500\)/);
});

test("an invite is used, expired or open", () => {
  const open = { code: "c", expires_at: "2026-11-28T12:00:00Z", used_by: null, used_at: null };
  assert.equal(inviteState(open, NOW), "open");
  assert.equal(inviteState({ ...open, expires_at: "2026-11-27T11:59:59Z" }, NOW), "expired");
  assert.equal(inviteState({ ...open, expires_at: "2026-11-27T11:00:00Z", used_by: "sam" }, NOW), "used", "used wins over expired");
});

test("the sign-up link carries the code, and the page reads it back", () => {
  const link = signupLink("https://chat.example", "Ab-9_x");
  assert.equal(link, "https://chat.example/?invite=Ab-9_x");
  assert.equal(inviteFromSearch(new URL(link).search), "Ab-9_x");
  assert.equal(inviteFromSearch("?x=1&invite=k3y"), "k3y");
  assert.equal(inviteFromSearch(""), "");
  assert.equal(inviteFromSearch("?invite=<script>"), "", "a code that can't be one is ignored");
  assert.equal(searchWithoutInvite("?invite=k3y"), "");
  assert.equal(searchWithoutInvite("?a=1&invite=k3y"), "?a=1");
});

test("expiry choices stay within the server's range, the default first", () => {
  assert.equal(EXPIRY_CHOICES[0].seconds, 604800);
  for (const choice of EXPIRY_CHOICES) assert.ok(choice.seconds >= 60 && choice.seconds <= 2592000, choice.label);
});

test("audit entries read as sentences with the actor, the target and the room marked", () => {
  const ban = auditSentence({ id: 1, actor: "maya", action: "ban", target: "sam", room: null });
  assert.deepEqual(ban, [
    { text: "maya", kind: "actor" },
    { text: " banned ", kind: "" },
    { text: "sam", kind: "target" },
  ]);
  assert.equal(sentence({ actor: "maya", action: "grant", target: "sam" }), "maya made sam an admin");
  assert.equal(sentence({ actor: "maya", action: "registration", target: "invite" }), "maya set registration to invite");
  assert.equal(
    sentence({ actor: "ann", action: "delete_message", target: "sam", room: "design" }),
    "ann deleted a message by sam in #design",
  );
  assert.equal(sentence({ actor: "ann", action: "remove_member", target: "sam", room: "ops" }), "ann removed sam from #ops");
  assert.equal(sentence({ actor: "ann", action: "topic", target: "Launch day", room: "general" }), "ann set the topic of #general to “Launch day”");
  assert.equal(sentence({ actor: "@cli", action: "purge", target: "sam" }), "@cli purge sam", "an unknown action shows by its name");
  assert.equal(sentence({ actor: "ann", action: "pin", target: "7", room: "ops" }), "ann pin 7 in #ops");
  const room = auditSentence({ actor: "ann", action: "remove_member", target: "<b>", room: "ops" });
  assert.deepEqual(room.filter((p) => p.kind).map((p) => [p.kind, p.text]), [
    ["actor", "ann"],
    ["target", "<b>"],
    ["room", "#ops"],
  ]);
});

test("server times: ISO strings, seconds or milliseconds; bad ones are null", () => {
  assert.equal(toDate("2026-11-27T12:00:00Z").getTime(), NOW);
  assert.equal(toDate(NOW / 1000).getTime(), NOW);
  assert.equal(toDate(NOW).getTime(), NOW);
  assert.equal(toDate("soon"), null);
  assert.equal(toDate(null), null);
});

test("relative times in words", () => {
  assert.equal(relativeTime(new Date(NOW + 7 * 86400e3), NOW, "en"), "in 7 days");
  assert.equal(relativeTime(new Date(NOW - 3 * 3600e3), NOW, "en"), "3 hours ago");
  assert.equal(relativeTime(new Date(NOW - 10e3), NOW, "en"), "now");
});

test("debounce: one call after the last of a burst; flush runs at once; cancel forgets", () => {
  const pending = new Map();
  let next = 0;
  const timers = {
    setTimeout: (fn) => {
      pending.set(++next, fn);
      return next;
    },
    clearTimeout: (id) => pending.delete(id),
  };
  let runs = 0;
  const search = debounce(() => runs++, 250, timers);
  search.call();
  search.call();
  search.call();
  assert.equal(pending.size, 1, "only the last call waits");
  [...pending.values()][0]();
  assert.equal(runs, 1);
  search.call();
  search.flush();
  assert.equal(runs, 2);
  assert.equal(pending.size, 0, "flush cleared the wait");
  search.call();
  search.cancel();
  assert.equal(pending.size, 0);
  assert.equal(runs, 2);
});
