import assert from "node:assert/strict";
import { test } from "node:test";

import { BACKOFF_CAP_MS, Backoff, backoffCeiling } from "../../src/parley/web/backoff.mjs";

test("the ceiling doubles from 0.5 s and stops at 30 s", () => {
  const ceilings = [0, 1, 2, 3, 4, 5, 6, 7, 20].map(backoffCeiling);
  assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("each delay is random(0, ceiling) and the attempt goes up after it", () => {
  const backoff = new Backoff(() => 0.5);
  assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [250, 500, 1000]);
  assert.equal(backoff.attempt, 3);
});

test("full jitter: a draw near 1 waits nearly the whole ceiling, 0 waits nothing", () => {
  const draws = [0.999, 0];
  const backoff = new Backoff(() => draws.shift());
  assert.ok(Math.abs(backoff.next() - 499.5) < 1e-9);
  assert.equal(backoff.next(), 0);
});

test("the attempt count stops growing; the delay stays under the cap", () => {
  const backoff = new Backoff(() => 0.999999);
  for (let i = 0; i < 100; i++) assert.ok(backoff.next() < BACKOFF_CAP_MS);
  assert.equal(backoff.attempt, 16);
});

test("reset starts again from the shortest wait", () => {
  const backoff = new Backoff(() => 1);
  backoff.next();
  backoff.next();
  backoff.reset();
  assert.equal(backoff.attempt, 0);
  assert.equal(backoff.next(), 500);
});
