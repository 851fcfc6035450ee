/* Files on the page (contract v2: a message's "attachments"): sizes in human units, what a
 * type is shown as, which files show inline as images, and the queue of uploads waiting to be
 * sent. DOM-free (unit-tested under Node); uploads.mjs and attachments.mjs put it on the page. */

export const MAX_ATTACHMENTS = 10; // per message, as the server allows
export const THUMB_MAX = 320; // the server's thumbnails fit in 320 × 320
// The types the server decodes, measures and thumbnails: only these show inline.
const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

const UNITS = ["B", "KB", "MB", "GB", "TB"];

/** 0 B, 999 B, 1.5 KB, 12 KB, 3.4 MB: one decimal below 10, none above (1 KB = 1024 B). */
export function formatSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} B`;
  const rounded = value < 10 ? Math.round(value * 10) / 10 : Math.round(value);
  // 1023.9 KB rounds to 1024: say 1 MB instead.
  if (rounded >= 1024 && unit < UNITS.length - 1) return `1 ${UNITS[unit + 1]}`;
  return `${rounded} ${UNITS[unit]}`;
}

// type -> [icon, label]; the icon is a symbol of index.html's sprite.
const KINDS = {
  "application/pdf": ["i-file-doc", "PDF document"],
  "application/zip": ["i-file-zip", "ZIP archive"],
  "application/gzip": ["i-file-zip", "Gzip archive"],
  "application/x-tar": ["i-file-zip", "Tar archive"],
  "application/x-7z-compressed": ["i-file-zip", "7-Zip archive"],
  "application/json": ["i-file-code", "JSON"],
  "application/msword": ["i-file-doc", "Word document"],
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ["i-file-doc", "Word document"],
  "application/vnd.ms-excel": ["i-file-sheet", "Spreadsheet"],
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ["i-file-sheet", "Spreadsheet"],
  "application/vnd.oasis.opendocument.text": ["i-file-doc", "Document"],
  "application/vnd.oasis.opendocument.spreadsheet": ["i-file-sheet", "Spreadsheet"],
  "text/csv": ["i-file-sheet", "CSV table"],
  "text/plain": ["i-file-text", "Text"],
  "text/markdown": ["i-file-text", "Markdown"],
};
// By the family before the "/", when the type itself is not listed.
const FAMILIES = {
  image: ["i-file-image", "image"],
  video: ["i-file-video", "video"],
  audio: ["i-file-audio", "audio"],
  text: ["i-file-text", "text"],
};

/**
 * How a file is shown on a card: {icon, label}. The type is the server's (from the bytes);
 * an unknown one is named by the file's extension ("BIN file"), else just "File".
 */
export function fileKind(type, name = "") {
  const base = String(type || "").split(";")[0].trim().toLowerCase();
  if (KINDS[base]) return { icon: KINDS[base][0], label: KINDS[base][1] };
  const [family, sub = ""] = base.split("/");
  const ext = extension(name);
  if (FAMILIES[family]) {
    const [glyph, noun] = FAMILIES[family];
    const what = (ext || sub.replace(/^x-/, "")).toUpperCase();
    return { icon: glyph, label: what ? `${what} ${noun}` : capitalize(noun) };
  }
  return { icon: "i-file", label: ext ? `${ext.toUpperCase()} file` : "File" };
}

function extension(name) {
  const match = /\.([A-Za-z0-9]{1,8})$/.exec(String(name));
  return match ? match[1] : "";
}

function capitalize(word) {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

const positiveInt = (n) => Number.isInteger(n) && n > 0;

/** A File from the server, with the fields the page uses; null when it is not one. */
export function normalizeFile(f) {
  if (!f || typeof f !== "object" || typeof f.id !== "string" || !f.id) return null;
  if (typeof f.name !== "string" || !Number.isInteger(f.size) || f.size < 0) return null;
  const sized = positiveInt(f.width) && positiveInt(f.height);
  return {
    id: f.id,
    name: f.name,
    type: typeof f.type === "string" ? f.type : "application/octet-stream",
    size: f.size,
    width: sized ? f.width : null,
    height: sized ? f.height : null,
  };
}

/** A message's attachments as the page keeps them (anything malformed left out). */
export function normalizeFiles(list) {
  if (!Array.isArray(list)) return [];
  return list.map(normalizeFile).filter(Boolean);
}

/** Shown inline as an image: a type the server thumbnails, with its size known. */
export function isInline(f) {
  return INLINE_TYPES.has(f.type) && positiveInt(f.width) && positiveInt(f.height);
}

/** `width` × `height` scaled down (never up) to fit `maxW` × `maxH`, in whole pixels. */
export function fitBox(width, height, maxW = THUMB_MAX, maxH = THUMB_MAX) {
  const scale = Math.min(1, maxW / width, maxH / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

export function fileUrl(f) {
  return "/api/files/" + encodeURIComponent(f.id);
}

export function thumbUrl(f) {
  return fileUrl(f) + "/thumb";
}

/** A message in a line (a notification, a reply's quote): its text, else what it carries. */
export function messageSummary(m) {
  if (m.text) return m.text;
  const files = Array.isArray(m.attachments) ? m.attachments : [];
  if (!files.length) return "";
  if (files.length > 1) return `${files.length} files`;
  return (isInline(files[0]) ? "Image: " : "File: ") + files[0].name;
}

/** What to say when `POST /api/files` answered `status` with `body` (its JSON, or null). */
export function uploadError(status, body) {
  const error = (body && body.error) || {};
  const said = typeof error.message === "string" && error.message ? error.message : "";
  if (status === 413 && error.code === "quota_exceeded") return "Your storage quota is full: this file was not uploaded.";
  if (status === 413) return "Too large: over the server's upload limit.";
  if (status === 400) return said ? `Can't upload this file: ${said}` : "Can't upload this file.";
  if (status === 401) return "Your session ended: sign in again to upload.";
  if (status === 429) return "Too many uploads at once: try again in a moment.";
  if (status === 0) return "Upload failed: the connection was lost.";
  return said || `Upload failed (HTTP ${status}).`;
}

/**
 * The uploads of the composer, per room, in the order they were added. Item statuses:
 * "uploading" (bytes going out: `loaded` of `size`), "done" (the server's File in `file`),
 * "failed" (`error` says why; the person removes it). Sending takes the done ones.
 */
export class UploadQueue {
  /** @param {() => void} onChange called after every change (to redraw) */
  constructor({ onChange = () => {} } = {}) {
    this.items = new Map(); // key -> item
    this.nextKey = 1;
    this.onChange = onChange;
  }

  get(key) {
    return this.items.get(key);
  }

  inRoom(room) {
    return [...this.items.values()].filter((item) => item.room === room);
  }

  /** How many more files the next message of `room` may carry. */
  spaceLeft(room) {
    return MAX_ATTACHMENTS - this.inRoom(room).filter((item) => item.status !== "failed").length;
  }

  /** A file the person picked ({name, size, type}); null when the message is full. */
  add(room, { name, size, type }) {
    if (this.spaceLeft(room) <= 0) return null;
    const item = { key: String(this.nextKey++), room, name, size, type, status: "uploading", loaded: 0, file: null, error: null };
    this.items.set(item.key, item);
    this.onChange();
    return item;
  }

  /** `loaded` of `total` bytes of the request went out (the body is a little more than the file). */
  progress(key, loaded, total) {
    const item = this.items.get(key);
    if (!item || item.status !== "uploading" || !(total > 0)) return;
    item.loaded = Math.max(item.loaded, Math.round(item.size * Math.min(1, loaded / total)));
    this.onChange();
  }

  done(key, file) {
    const item = this.items.get(key);
    if (!item) return;
    Object.assign(item, { status: "done", file, loaded: item.size, error: null });
    this.onChange();
  }

  failed(key, error) {
    const item = this.items.get(key);
    if (!item) return;
    Object.assign(item, { status: "failed", error });
    this.onChange();
  }

  /** Gone from the composer (cancelled, or an error read); returns the item, or null. */
  remove(key) {
    const item = this.items.get(key) ?? null;
    if (item) {
      this.items.delete(key);
      this.onChange();
    }
    return item;
  }

  /** Some file of `room` is still on its way up. */
  busy(room) {
    return this.inRoom(room).some((item) => item.status === "uploading");
  }

  /** The uploaded Files of `room`, in order, taken off the composer (they go with a message). */
  take(room) {
    const done = this.inRoom(room).filter((item) => item.status === "done");
    for (const item of done) this.items.delete(item.key);
    if (done.length) this.onChange();
    return done.map((item) => item.file);
  }

  /** How far an upload got, 0..1. */
  static fraction(item) {
    if (item.status === "done") return 1;
    return item.size > 0 ? item.loaded / item.size : 0;
  }

  clear() {
    this.items.clear();
    this.onChange();
  }
}
