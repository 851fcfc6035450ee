import assert from "node:assert/strict";
import { test } from "node:test";

import { RenderScheduler } from "../../src/parley/web/scheduler.mjs";

/** A scheduler whose frames run when the test says so. */
function scheduler() {
  const frames = [];
  const draws = [];
  const s = new RenderScheduler((parts) => draws.push(parts), (callback) => frames.push(callback));
  const runFrame = () => frames.shift()();
  return { s, frames, draws, runFrame };
}

test("nothing is drawn before the frame; then every mark at once, in one draw", () => {
  const { s, frames, draws, runFrame } = scheduler();
  s.markDirty("rooms");
  s.markDirty("log", { appended: true });
  s.markDirty("rooms");
  assert.equal(draws.length, 0);
  assert.equal(frames.length, 1, "one frame asked for, however many marks");
  runFrame();
  assert.equal(draws.length, 1);
  assert.deepEqual([...draws[0].keys()], ["rooms", "log"]);
});

test("the details of one part add up until it is drawn", () => {
  const { s, draws, runFrame } = scheduler();
  s.markDirty("log", { appended: true, mine: false });
  s.markDirty("log", { mine: true });
  s.markDirty("log", { reset: false });
  runFrame();
  assert.deepEqual(draws[0].get("log"), { appended: true, mine: true, reset: false });
});

test("a mark made while drawing is drawn in the next frame", () => {
  const frames = [];
  const draws = [];
  const s = new RenderScheduler(
    (parts) => {
      draws.push([...parts.keys()]);
      if (parts.has("log")) s.markDirty("logTop");
    },
    (callback) => frames.push(callback),
  );
  s.markDirty("log");
  frames.shift()();
  assert.equal(frames.length, 1);
  frames.shift()();
  assert.deepEqual(draws, [["log"], ["logTop"]]);
});

test("flush draws at once; the frame that comes later draws nothing again", () => {
  const { s, draws, runFrame } = scheduler();
  s.markDirty("rooms");
  s.flush();
  runFrame();
  assert.equal(draws.length, 1);
});

test("clear forgets the marks", () => {
  const { s, draws, runFrame } = scheduler();
  s.markDirty("rooms");
  s.clear();
  runFrame();
  assert.equal(draws.length, 0);
});
