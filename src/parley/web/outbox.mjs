/* The outbox: messages typed but not yet delivered, each with its own client_id so that a
 * resend is recognised by the server. DOM-free: the caller stores and restores it. */

import { normalizeFiles } from "./files.mjs";
import { ROOM_REF_RE } from "./model.mjs";

/**
 * Item statuses: "queued" (waits for its turn), "sending" (on the wire, no ack yet),
 * "acked" (stored, its message event not here yet), "failed" (refused: the person decides).
 */
export class Outbox {
  /**
   * @param {() => void} onChange called after every change (to redraw and save)
   * @param {() => string} newId a fresh client_id
   * @param {() => number} now
   */
  constructor({ onChange = () => {}, newId = randomId, now = Date.now } = {}) {
    this.items = new Map(); // client_id -> item, in creation order
    this.heldUntil = new Map(); // room -> time before which the room sends nothing
    this.onChange = onChange;
    this.newId = newId;
    this.now = now;
  }

  get(clientId) {
    return this.items.get(clientId);
  }

  /** The items of one room, in the order they were written. */
  inRoom(room) {
    return [...this.items.values()].filter((item) => item.room === room);
  }

  /**
   * A message to send; `replyTo`: the seq of the message it answers, or null; `attachments`:
   * the uploaded Files it carries (the server's, as `POST /api/files` answered).
   */
  add(room, text, replyTo = null, attachments = []) {
    const item = {
      client_id: this.newId(),
      room,
      text,
      reply_to: replyTo,
      attachments,
      status: "queued",
      created: new Date(this.now()),
      error: null,
    };
    this.items.set(item.client_id, item);
    this.onChange();
    return item;
  }

  /**
   * The item to put on the wire next in `room`, or null. One message in flight per room
   * keeps them in order even when the server asks us to slow down; failed ones wait for the
   * person, acked ones are done.
   */
  next(room) {
    if (this.isHeld(room)) return null;
    for (const item of this.items.values()) {
      if (item.room !== room) continue;
      if (item.status === "sending") return null;
      if (item.status === "queued") return item;
    }
    return null;
  }

  sending(item) {
    item.status = "sending";
    this.onChange();
  }

  /** The server stored it (ack): it leaves when its message event arrives. */
  acked(item, seq) {
    item.status = "acked";
    item.seq = seq;
    this.onChange();
  }

  /** Its message event arrived: delivered. Returns whether it was here. */
  delivered(clientId) {
    const had = this.items.delete(clientId);
    if (had) this.onChange();
    return had;
  }

  /** Not stored for now (rate limited, unavailable): wait, then send it again. */
  hold(item, ms) {
    item.status = "queued";
    this.heldUntil.set(item.room, this.now() + ms);
    this.onChange();
  }

  release(room) {
    this.heldUntil.delete(room);
    this.onChange();
  }

  isHeld(room) {
    return (this.heldUntil.get(room) ?? 0) > this.now();
  }

  fail(item, error) {
    item.status = "failed";
    item.error = error;
    this.onChange();
  }

  retry(clientId) {
    const item = this.items.get(clientId);
    if (!item) return null;
    item.status = "queued";
    item.error = null;
    this.onChange();
    return item;
  }

  discard(clientId) {
    if (this.items.delete(clientId)) this.onChange();
  }

  /** The socket closed: what was on the wire goes back to the queue, to be resent as is. */
  requeue() {
    for (const item of this.items.values()) if (item.status === "sending") item.status = "queued";
    this.onChange();
  }

  /** Forget what was written for rooms we no longer have. */
  keepRooms(hasRoom) {
    let changed = false;
    for (const [id, item] of this.items) {
      if (!hasRoom(item.room)) changed = this.items.delete(id) || changed;
    }
    if (changed) this.onChange();
  }

  /** What to save: everything not yet stored; failed ones keep their error. */
  toJSON() {
    return [...this.items.values()]
      .filter((item) => item.status !== "acked")
      .map((item) => ({
        client_id: item.client_id,
        room: item.room,
        text: item.text,
        reply_to: item.reply_to ?? null,
        attachments: item.attachments,
        created: item.created.toISOString(),
        error: item.status === "failed" ? item.error || "" : null,
      }));
  }

  /** Take back what `toJSON` saved (from storage: anything malformed is skipped). */
  restore(saved) {
    if (!Array.isArray(saved)) return;
    for (const it of saved) {
      if (!it || typeof it.client_id !== "string" || typeof it.text !== "string") continue;
      if (typeof it.room !== "string" || !ROOM_REF_RE.test(it.room)) continue;
      const failed = typeof it.error === "string";
      const created = new Date(it.created);
      this.items.set(it.client_id, {
        client_id: it.client_id,
        room: it.room,
        text: it.text,
        reply_to: Number.isInteger(it.reply_to) ? it.reply_to : null,
        attachments: normalizeFiles(it.attachments),
        status: failed ? "failed" : "queued",
        created: Number.isNaN(created.getTime()) ? new Date(this.now()) : created,
        error: failed ? it.error : null,
      });
    }
    this.onChange();
  }
}

/**
 * A UUIDv7 layout: 48 bits of Unix time in ms, then 80 random bits, as 32 hex digits.
 * Time-ordered ids append to one edge of the server's resend index instead of dirtying an
 * index page per message. crypto.getRandomValues works on plain http too (randomUUID needs
 * a secure context).
 */
export function randomId() {
  const bytes = new Uint8Array(10);
  globalThis.crypto.getRandomValues(bytes);
  const time = Date.now().toString(16).padStart(12, "0");
  return time + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
