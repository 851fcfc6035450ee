/* The chat socket: one WebSocket at a time, its state for the header, and reconnecting with
 * backoff. DOM-free: the caller passes the URL and how to open a socket and see the network. */

import { Backoff, STABLE_MS } from "./backoff.mjs";

export const PROTOCOL = "parley.v1";
export const CLOSE_NORMAL = 1000; // RFC 6455: we are done with this socket
export const CLOSE_SIGNED_OUT = 4001; // the server ended this session (CloseCode in protocol/errors.py)
export const CLOSE_BANNED = 4003; // an admin banned the account: the session ended too
const OPEN = 1; // WebSocket.OPEN, which Node has no global for
const TICK_MS = 250; // the "Reconnecting in N s" countdown

/**
 * States: "connecting" (a socket is opening), "online" (hello arrived), "reconnecting"
 * (waiting out the backoff), "offline" (the browser reports no network).
 *
 * Events (all optional):
 *   frame(data)        a message on the current socket, still as text;
 *   change(changed)    the state (changed = true) or the countdown moved;
 *   closed()           the socket went away: forget what lived on it (joins, presence…);
 *   signedOut(code)    closed with 4001 (or 4003: banned); no reconnect;
 *   refused()          closed before `hello`: the session may be gone (ask /api/me).
 */
export class Connection {
  constructor({
    url,
    open = (address) => new WebSocket(address, PROTOCOL),
    networkUp = () => true,
    now = Date.now,
    backoff = new Backoff(),
    events = {},
  }) {
    this.url = url;
    this.open = open;
    this.networkUp = networkUp;
    this.now = now;
    this.backoff = backoff;
    this.events = events;
    this.state = "connecting";
    this.socket = null;
    this.socketId = 0; // bumps with each socket: "joined on this socket" compares it
    this.greetedId = 0; // the last socket that said hello
    this.helloAt = 0;
    this.retryAt = 0;
    this.retryTimer = null;
    this.tickTimer = null;
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === OPEN;
  }

  /** The current socket's id when it is open, else null. */
  get openId() {
    return this.isOpen ? this.socketId : null;
  }

  send(frame) {
    if (!this.isOpen) return false;
    try {
      this.socket.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  connect() {
    this.#clearRetry();
    if (this.socket) return;
    if (!this.networkUp()) {
      this.#setState("offline");
      return;
    }
    this.#setState("connecting");
    let ws;
    try {
      ws = this.open(this.url);
    } catch {
      this.#scheduleReconnect(false);
      return;
    }
    this.socket = ws;
    const id = ++this.socketId;
    ws.onmessage = (event) => {
      if (this.socket === ws) this.events.frame?.(event.data);
    };
    ws.onclose = (event) => {
      if (this.socket !== ws) return;
      this.socket = null;
      this.#closed(event.code, this.greetedId === id);
    };
    // `error` is always followed by `close`; nothing to do here.
    ws.onerror = () => {};
  }

  /** `hello` arrived: the socket is in use; the backoff resets once it has lived STABLE_MS. */
  greeted() {
    this.greetedId = this.socketId;
    this.helloAt = this.now();
    this.#setState("online");
  }

  /** Connect now instead of waiting out the backoff (Retry now, the browser is online). */
  retryNow() {
    if (!this.socket) this.connect();
  }

  /** Back to a visible tab: don't make the person wait out a long backoff. */
  hurry() {
    if (!this.socket && this.state === "reconnecting" && this.retryAt - this.now() > 2000) {
      this.connect();
    }
  }

  /** The network is gone: a socket that looks open is most likely dead (TCP would take
   * minutes to notice). Drop it now; `retryNow` brings a fresh one. */
  goOffline() {
    const ws = this.socket;
    if (ws) {
      this.socket = null;
      detach(ws, "network changed");
      this.#closed(CLOSE_NORMAL, true);
    }
    this.#clearRetry();
    this.#setState("offline");
  }

  /** The session is over: close without reconnecting, and no event fires again. */
  stop() {
    this.#clearRetry();
    const ws = this.socket;
    this.socket = null;
    if (ws) detach(ws, "signed out");
    this.events = {};
  }

  #closed(code, greeted) {
    this.events.closed?.();
    if (code === CLOSE_SIGNED_OUT || code === CLOSE_BANNED) {
      this.events.signedOut?.(code);
      return;
    }
    if (greeted && this.now() - this.helloAt >= STABLE_MS) this.backoff.reset();
    this.#scheduleReconnect(!greeted);
  }

  #scheduleReconnect(checkSession) {
    this.#clearRetry();
    const delay = this.backoff.next();
    this.retryAt = this.now() + delay;
    if (!this.networkUp()) {
      this.#setState("offline");
      return;
    }
    this.#setState("reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.tickTimer = setInterval(() => this.events.change?.(false), TICK_MS);
    if (checkSession) this.events.refused?.();
  }

  #clearRetry() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.retryTimer = null;
    this.tickTimer = null;
  }

  #setState(state) {
    const changed = this.state !== state;
    this.state = state;
    this.events.change?.(changed);
  }
}

/** Abandon a socket without waiting for its close handshake. */
function detach(ws, reason) {
  ws.onmessage = ws.onclose = ws.onerror = null;
  try {
    ws.close(CLOSE_NORMAL, reason);
  } catch {
    /* already closing */
  }
}
