import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { BACKOFF_CAP_MS, Backoff, STABLE_MS } from "../../src/parley/web/backoff.mjs";
import { CLOSE_BANNED, CLOSE_SIGNED_OUT, Connection } from "../../src/parley/web/socket.mjs";

/** A stand-in for the browser's WebSocket: the test opens, talks and closes it. */
class FakeSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close(code, reason) {
    this.closedWith = [code, reason];
  }
  // what the server does
  opened() {
    this.readyState = 1;
  }
  receive(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  serverCloses(code) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

const connections = [];
afterEach(() => {
  for (const c of connections.splice(0)) c.stop(); // no reconnect timer outlives its test
});

function setup({ network = true } = {}) {
  const sockets = [];
  const events = [];
  const clock = { now: 1_000_000 };
  const connection = new Connection({
    url: "ws://host/chat",
    open: (url) => {
      const ws = new FakeSocket(url);
      sockets.push(ws);
      return ws;
    },
    networkUp: () => network,
    now: () => clock.now,
    backoff: new Backoff(() => 0.5),
    events: {
      frame: (data) => events.push(["frame", JSON.parse(data).type]),
      closed: () => events.push(["closed"]),
      signedOut: (code) => events.push(code === CLOSE_BANNED ? ["signedOut", code] : ["signedOut"]),
      refused: () => events.push(["refused"]),
    },
  });
  connections.push(connection);
  return { connection, sockets, events, clock };
}

test("connect opens one socket; frames go out as JSON only while it is open", () => {
  const { connection, sockets } = setup();
  connection.connect();
  connection.connect();
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, "ws://host/chat");
  assert.equal(connection.state, "connecting");
  assert.equal(connection.send({ type: "join", room: "general" }), false);
  sockets[0].opened();
  assert.equal(connection.send({ type: "join", room: "general" }), true);
  assert.deepEqual(sockets[0].sent, [{ type: "join", room: "general" }]);
  assert.equal(connection.openId, connection.socketId);
});

test("hello makes it online; frames are passed on as they came", () => {
  const { connection, sockets, events } = setup();
  connection.connect();
  sockets[0].opened();
  sockets[0].receive({ type: "hello" });
  connection.greeted();
  assert.equal(connection.state, "online");
  assert.deepEqual(events, [["frame", "hello"]]);
});

test("a close before hello waits out the backoff and asks whether the session still stands", () => {
  const { connection, sockets, events, clock } = setup();
  connection.connect();
  sockets[0].serverCloses(1006);
  assert.deepEqual(events, [["closed"], ["refused"]]);
  assert.equal(connection.state, "reconnecting");
  assert.equal(connection.retryAt, clock.now + 250, "random 0.5 × the first ceiling, 500 ms");
  assert.equal(connection.backoff.attempt, 1);
  connection.retryNow();
  assert.equal(sockets.length, 2, "Retry now does not wait");
});

test("4001: the session ended; no reconnect", () => {
  const { connection, sockets, events } = setup();
  connection.connect();
  sockets[0].opened();
  connection.greeted();
  sockets[0].serverCloses(CLOSE_SIGNED_OUT);
  assert.deepEqual(events, [["closed"], ["signedOut"]]);
  assert.equal(connection.retryTimer, null);
  assert.equal(connection.state, "online", "the page leaves; nothing to show");
});

test("4003: banned, the session ended too, saying why; no reconnect", () => {
  const { connection, sockets, events } = setup();
  connection.connect();
  sockets[0].opened();
  connection.greeted();
  sockets[0].serverCloses(CLOSE_BANNED);
  assert.deepEqual(events, [["closed"], ["signedOut", 4003]]);
  assert.equal(connection.retryTimer, null);
  assert.equal(sockets.length, 1);
});

test("the backoff grows while connections drop soon after hello, and resets after a stable one", () => {
  const { connection, sockets, clock } = setup();
  const dropAfter = (ms) => {
    connection.retryNow();
    const ws = sockets.at(-1);
    ws.opened();
    connection.greeted();
    clock.now += ms;
    ws.serverCloses(1006);
  };
  dropAfter(100);
  dropAfter(100);
  dropAfter(100);
  assert.equal(connection.backoff.attempt, 3);
  assert.equal(connection.retryAt - clock.now, 0.5 * 2000);
  dropAfter(STABLE_MS);
  assert.equal(connection.backoff.attempt, 1);
  assert.equal(connection.retryAt - clock.now, 250);
});

test("a dead socket's frames and close are ignored once a new one took over", () => {
  const { connection, sockets, events } = setup();
  connection.connect();
  const old = sockets[0];
  connection.goOffline();
  assert.deepEqual(old.closedWith, [1000, "network changed"]);
  connection.retryNow();
  events.length = 0;
  old.onmessage?.({ data: '{"type":"message"}' });
  old.onclose?.({ code: 1006 });
  assert.deepEqual(events, []);
  assert.equal(connection.socket, sockets[1]);
});

test("offline: no socket is opened, and going offline drops the current one", () => {
  const { connection, sockets, events } = setup({ network: false });
  connection.connect();
  assert.equal(sockets.length, 0);
  assert.equal(connection.state, "offline");
  const online = setup();
  online.connection.connect();
  online.connection.goOffline();
  assert.deepEqual(online.events, [["closed"]]);
  assert.equal(online.connection.state, "offline");
  assert.equal(online.connection.retryTimer, null, "waits for the browser's online event");
  assert.deepEqual(events, []);
});

test("hurry skips a long wait only", () => {
  const { connection, sockets, clock } = setup();
  connection.backoff.attempt = 10; // next ceiling: the cap
  connection.connect();
  sockets[0].serverCloses(1006);
  assert.equal(connection.retryAt - clock.now, BACKOFF_CAP_MS / 2);
  connection.hurry();
  assert.equal(sockets.length, 2);
  sockets[1].serverCloses(1006);
  connection.backoff.reset();
  connection.retryNow();
  sockets[2].serverCloses(1006); // waits 250 ms: not worth skipping
  connection.hurry();
  assert.equal(sockets.length, 3);
});

test("stop closes the socket and nothing fires after", () => {
  const { connection, sockets, events } = setup();
  connection.connect();
  const ws = sockets[0];
  connection.stop();
  assert.deepEqual(ws.closedWith, [1000, "signed out"]);
  ws.onclose?.({ code: 1006 });
  assert.deepEqual(events, []);
  assert.equal(connection.retryTimer, null);
});
