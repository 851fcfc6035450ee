import assert from "node:assert/strict";
import { test } from "node:test";

import { Outbox, randomId } from "../../src/parley/web/outbox.mjs";

// Browsers have crypto.getRandomValues on globalThis; Node has it there from version 19 on.
globalThis.crypto ??= (await import("node:crypto")).webcrypto;

/** An outbox with ids c1, c2… and a clock the test moves. */
function outbox() {
  let n = 0;
  const clock = { now: 1000 };
  const box = new Outbox({ newId: () => `c${++n}`, now: () => clock.now });
  return { box, clock };
}

test("one message in flight per room, in the order written", () => {
  const { box } = outbox();
  const a = box.add("general", "one");
  const b = box.add("general", "two");
  const other = box.add("design", "elsewhere");
  assert.equal(box.next("general"), a);
  box.sending(a);
  assert.equal(box.next("general"), null, "two waits for one's answer");
  assert.equal(box.next("design"), other, "rooms do not wait for each other");
  box.acked(a, 7);
  assert.equal(box.next("general"), b);
});

test("a message on the wire when the socket closes is resent with the same client_id", () => {
  const { box } = outbox();
  const a = box.add("general", "hello");
  box.sending(a);
  box.requeue();
  const again = box.next("general");
  assert.equal(again.client_id, "c1");
  assert.equal(again.status, "queued");
});

test("delivery is by client_id, once: a second copy of the message changes nothing", () => {
  let changes = 0;
  const box = new Outbox({ newId: () => "only", onChange: () => changes++ });
  box.add("general", "hi");
  assert.equal(box.delivered("only"), true);
  assert.equal(box.delivered("only"), false);
  assert.equal(box.items.size, 0);
  assert.equal(changes, 2);
});

test("failed messages wait for the person; retry puts them back in line", () => {
  const { box } = outbox();
  const a = box.add("general", "too long");
  const b = box.add("general", "next");
  box.fail(a, "Too long to send");
  assert.equal(box.next("general"), b);
  box.sending(b);
  box.delivered(b.client_id);
  assert.equal(box.next("general"), null);
  box.retry(a.client_id);
  assert.equal(box.next("general"), a);
  assert.equal(a.error, null);
});

test("a hold stops the room's sending until its time has passed", () => {
  const { box, clock } = outbox();
  const a = box.add("general", "slow down");
  box.sending(a);
  box.hold(a, 2000);
  assert.equal(a.status, "queued");
  assert.equal(box.isHeld("general"), true);
  assert.equal(box.next("general"), null);
  clock.now += 2001;
  assert.equal(box.next("general"), a);
  box.hold(a, 2000);
  box.release("general");
  assert.equal(box.next("general"), a);
});

test("saved and restored: what is not stored yet, failed ones with their error", () => {
  const { box } = outbox();
  const queued = box.add("general", "queued");
  const sending = box.add("design", "sending");
  const acked = box.add("general", "acked");
  const failed = box.add("general", "failed");
  box.sending(sending);
  box.acked(acked, 3);
  box.fail(failed, "refused");
  const saved = JSON.parse(JSON.stringify(box));
  assert.deepEqual(
    saved.map((it) => [it.client_id, it.error]),
    [
      [queued.client_id, null],
      [sending.client_id, null],
      [failed.client_id, "refused"],
    ],
  );
  const { box: restored } = outbox();
  restored.restore(saved);
  restored.restore(saved); // twice (two loads): still one item per client_id
  assert.deepEqual(
    [...restored.items.values()].map((it) => [it.client_id, it.status, it.error]),
    [
      ["c1", "queued", null],
      ["c2", "queued", null],
      ["c4", "failed", "refused"],
    ],
  );
  assert.equal(restored.get("c1").created.toISOString(), queued.created.toISOString());
});

test("attachments are saved and restored with their message; malformed ones are dropped", () => {
  const { box } = outbox();
  const photo = { id: "f1", name: "cat.png", type: "image/png", size: 9, width: 4, height: 3 };
  box.add("general", "", null, [photo]);
  const saved = JSON.parse(JSON.stringify(box));
  saved[0].attachments.push({ id: 3 });
  const { box: restored } = outbox();
  restored.restore(saved);
  assert.deepEqual(restored.get("c1").attachments, [photo]);
  restored.restore([{ client_id: "old", room: "general", text: "saved before files" }]);
  assert.deepEqual(restored.get("old").attachments, []);
});

test("restore skips what storage could have mangled", () => {
  const { box } = outbox();
  box.restore([
    null,
    { client_id: 1, room: "general", text: "x" },
    { client_id: "a", room: "Not A Room", text: "x" },
    { client_id: "b", room: "general" },
    { client_id: "c", room: "general", text: "ok", created: "garbage" },
  ]);
  box.restore({ not: "a list" });
  assert.deepEqual([...box.items.keys()], ["c"]);
  assert.ok(!Number.isNaN(box.get("c").created.getTime()));
});

test("keepRooms forgets messages for rooms that are gone", () => {
  const { box } = outbox();
  box.add("general", "stays");
  box.add("gone", "goes");
  box.keepRooms((room) => room === "general");
  assert.deepEqual(box.inRoom("general").length + box.inRoom("gone").length, 1);
});

test("client ids are 32 hex digits, time first, and differ", () => {
  const a = randomId();
  const b = randomId();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, b);
  assert.ok(Math.abs(parseInt(a.slice(0, 12), 16) - Date.now()) < 60000);
});
