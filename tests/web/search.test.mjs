import assert from "node:assert/strict";
import { test } from "node:test";

import { groupResults, markRanges, markedPieces, moveActive, queryWords } from "../../src/parley/web/search.mjs";

const msg = (room, seq, text) => ({ room, seq, username: "amy", ts: "2026-01-01T00:00:00Z", text });

test("results are grouped by room, groups in the order of their newest result", () => {
  const results = [msg("dev", 9, "a"), msg("dm~ab12cd34ef", 7, "b"), msg("dev", 5, "c"), msg("general", 3, "d")];
  const labels = { dev: "dev", "dm~ab12cd34ef": "bob", general: "general" };
  const groups = groupResults(results, (room) => labels[room]);
  assert.deepEqual(
    groups.map((g) => [g.room, g.label, g.items.map((m) => m.seq)]),
    [
      ["dev", "dev", [9, 5]],
      ["dm~ab12cd34ef", "bob", [7]],
      ["general", "general", [3]],
    ],
  );
});

test("results that are not messages are left out", () => {
  const groups = groupResults([null, { room: "dev" }, msg("dev", 1, "ok"), { room: 3, seq: 1, text: "x" }], (r) => r);
  assert.deepEqual(groups.map((g) => g.items.length), [1]);
});

test("the server's ranges are used when given: clamped, sorted, merged", () => {
  assert.deepEqual(markRanges("hello world", [[6, 11], [0, 5]], "ignored"), [[0, 5], [6, 11]]);
  assert.deepEqual(markRanges("hello", [[3, 99], [-2, 1], [2, 4]], ""), [[0, 1], [2, 5]]);
  assert.deepEqual(markRanges("hello", [["a", 1], [4, 2]], "hel"), [], "invalid ranges are dropped, none left: nothing to mark");
});

test("without ranges: case-insensitive prefixes of the query words at word starts", () => {
  assert.deepEqual(markRanges("Deploy the deployment; redeploy", undefined, "depl"), [[0, 4], [11, 15]]);
  assert.deepEqual(markRanges("Grüße aus Köln", null, "köl GRÜ"), [[0, 3], [10, 13]]);
  assert.deepEqual(markRanges("a.b (x) [y]", undefined, '"a" (x OR NEAR*'), [[0, 1], [5, 6]], "FTS syntax is just words");
  assert.deepEqual(markRanges("anything", undefined, "   "), []);
});

test("ranges count code points, as the server does", () => {
  const text = "😀 ship it";
  const ranges = markRanges(text, [[2, 6]], "");
  assert.deepEqual(markedPieces(text, ranges), [
    { text: "😀 ", mark: false },
    { text: "ship", mark: true },
    { text: " it", mark: false },
  ]);
  assert.deepEqual(markRanges(text, undefined, "ship"), [[2, 6]]);
});

test("a long message is cut around its first mark", () => {
  const text = "x".repeat(300) + " needle " + "y".repeat(300);
  const ranges = markRanges(text, undefined, "needle");
  const pieces = markedPieces(text, ranges, 100);
  assert.equal(pieces[0].text, "…");
  assert.equal(pieces.at(-1).text, "…");
  const marked = pieces.filter((p) => p.mark).map((p) => p.text);
  assert.deepEqual(marked, ["needle"]);
  const shown = pieces.slice(1, -1).map((p) => p.text).join("");
  assert.equal(Array.from(shown).length, 100);
});

test("queryWords splits as the server does: on anything that is not a letter or a digit", () => {
  assert.deepEqual(queryWords(' foo-bar "baz" NEAR(x) snake_case foo'), ["foo", "bar", "baz", "NEAR", "x", "snake", "case"]);
  const many = Array.from({ length: 1000 }, (_, i) => `w${i}`).join(" ");
  assert.deepEqual(queryWords(many), Array.from({ length: 20 }, (_, i) => `w${i}`), "the first 20, as the server");
});

test("the active result moves with the arrows and wraps", () => {
  assert.equal(moveActive(-1, 3, "ArrowDown"), 0);
  assert.equal(moveActive(2, 3, "ArrowDown"), 0);
  assert.equal(moveActive(0, 3, "ArrowUp"), 2);
  assert.equal(moveActive(1, 3, "End"), 2);
  assert.equal(moveActive(1, 3, "Home"), 0);
  assert.equal(moveActive(-1, 0, "ArrowDown"), -1);
});
