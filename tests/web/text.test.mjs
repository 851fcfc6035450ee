import assert from "node:assert/strict";
import { test } from "node:test";

import { clip, codePoints, matchPeople, mentionQuery, trimUrl } from "../../src/parley/web/text.mjs";

test("code points, as the server counts them: an emoji is one", () => {
  assert.equal(codePoints("a😀b"), 3);
  assert.equal("a😀b".length, 4);
});

test("clip cuts at code points and marks the cut", () => {
  assert.equal(clip("😀😀😀", 2), "😀😀…");
  assert.equal(clip("short", 10), "short");
});

test("trailing punctuation is not part of a link; a closing paren that closes one inside is", () => {
  assert.equal(trimUrl("https://example.com/x."), "https://example.com/x");
  assert.equal(trimUrl("https://en.wikipedia.org/wiki/Foo_(bar))"), "https://en.wikipedia.org/wiki/Foo_(bar)");
  assert.equal(trimUrl("https://example.com/x)"), "https://example.com/x");
});

test("mentionQuery: the @name being typed before the caret", () => {
  assert.deepEqual(mentionQuery("hi @bo", 6), { start: 3, query: "bo" });
  assert.deepEqual(mentionQuery("@", 1), { start: 0, query: "" });
  assert.equal(mentionQuery("mail me@example", 15), null, "not after a word");
  assert.equal(mentionQuery("hi @bob and", 11), null, "the caret left the name");
  assert.deepEqual(mentionQuery("hi @bob and", 7), { start: 3, query: "bob" });
});

test("matchPeople: prefix matches first, then inside matches, never yourself, at most 8", () => {
  const names = ["Bob", "abby", "bobby", "ann", "rob"];
  assert.deepEqual(matchPeople(names, "bo", "ann"), ["Bob", "bobby"]);
  assert.deepEqual(matchPeople(names, "b", "ann"), ["Bob", "bobby", "abby", "rob"]);
  assert.deepEqual(matchPeople(names, "", "Ann"), ["Bob", "abby", "bobby", "rob"]);
  const many = Array.from({ length: 20 }, (_, i) => `u${i}`);
  assert.equal(matchPeople(many, "u", null).length, 8);
});
