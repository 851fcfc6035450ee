import assert from "node:assert/strict";
import { test } from "node:test";

import { ALL, GROUPS, pushRecent, searchEmoji } from "../../src/parley/web/emoji.mjs";

test("a few hundred emoji in groups, each with a name, none twice", () => {
  assert.ok(ALL.length >= 300, String(ALL.length));
  assert.ok(GROUPS.length >= 5);
  for (const e of ALL) assert.ok(e.char && e.name, JSON.stringify(e));
  assert.equal(new Set(ALL.map((e) => e.char)).size, ALL.length);
});

test("search: every word must start a word of the name; aliases count", () => {
  assert.deepEqual(
    searchEmoji("thumbs up").map((e) => e.char),
    ["👍"],
  );
  assert.ok(searchEmoji("tada").some((e) => e.char === "🎉"));
  assert.ok(searchEmoji("HEART").length > 5, "case does not matter");
  assert.deepEqual(searchEmoji("zzzqqq"), []);
  assert.equal(searchEmoji("").length, 80, "no query: the first ones");
});

test("recently used: newest first, no repeats, at most 16", () => {
  let recent = [];
  for (const c of ["a", "b", "a", "c"]) recent = pushRecent(recent, c);
  assert.deepEqual(recent, ["c", "a", "b"]);
  for (let i = 0; i < 30; i++) recent = pushRecent(recent, String(i));
  assert.equal(recent.length, 16);
  assert.deepEqual(pushRecent("garbage", "x"), ["x"]);
});
