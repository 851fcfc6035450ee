import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MAX_ATTACHMENTS,
  UploadQueue,
  fileKind,
  fileUrl,
  fitBox,
  formatSize,
  isInline,
  messageSummary,
  normalizeFiles,
  thumbUrl,
  uploadError,
} from "../../src/parley/web/files.mjs";

const photo = { id: "f1", name: "cat.png", type: "image/png", size: 2048, width: 640, height: 480 };

test("sizes in human units: bytes, then one decimal below 10, none above", () => {
  assert.equal(formatSize(0), "0 B");
  assert.equal(formatSize(1023), "1023 B");
  assert.equal(formatSize(1024), "1 KB");
  assert.equal(formatSize(1536), "1.5 KB");
  assert.equal(formatSize(12 * 1024 + 300), "12 KB");
  assert.equal(formatSize(10 * 1024 * 1024), "10 MB");
  assert.equal(formatSize(3.45 * 1024 ** 3), "3.5 GB");
  assert.equal(formatSize(1024 * 1024 - 1), "1 MB", "1023.99 KB reads as 1 MB, not 1024 KB");
  assert.equal(formatSize(-1), "");
  assert.equal(formatSize(Number.NaN), "");
});

test("a type is shown by a known name, else by its family and extension, else as a file", () => {
  assert.deepEqual(fileKind("application/pdf", "a.pdf"), { icon: "i-file-doc", label: "PDF document" });
  assert.deepEqual(fileKind("application/zip", "x.zip"), { icon: "i-file-zip", label: "ZIP archive" });
  assert.deepEqual(fileKind("text/plain; charset=utf-8", "notes.txt"), { icon: "i-file-text", label: "Text" });
  assert.deepEqual(fileKind("image/svg+xml", "logo.svg"), { icon: "i-file-image", label: "SVG image" });
  assert.deepEqual(fileKind("video/mp4", "clip"), { icon: "i-file-video", label: "MP4 video" });
  assert.deepEqual(fileKind("audio/x-wav", ""), { icon: "i-file-audio", label: "WAV audio" });
  assert.deepEqual(fileKind("application/octet-stream", "dump.bin"), { icon: "i-file", label: "BIN file" });
  assert.deepEqual(fileKind("", "README"), { icon: "i-file", label: "File" });
});

test("attachments from the server: malformed ones are left out, sizes only when both are there", () => {
  const files = normalizeFiles([
    photo,
    { id: "f2", name: "a.txt", type: "text/plain", size: 3, width: 0, height: 10 },
    { id: "", name: "x", size: 1 },
    { id: "f3", name: "x", size: -1 },
    { id: "f4", name: 7, size: 1 },
    null,
    "f5",
  ]);
  assert.deepEqual(
    files.map((f) => [f.id, f.width, f.height]),
    [
      ["f1", 640, 480],
      ["f2", null, null],
    ],
  );
  assert.deepEqual(normalizeFiles(undefined), []);
});

test("inline only for the image types the server thumbnails, with their size known", () => {
  assert.equal(isInline(photo), true);
  assert.equal(isInline({ ...photo, type: "image/svg+xml" }), false, "an SVG is a card, never inline");
  assert.equal(isInline({ ...photo, width: null, height: null }), false);
  assert.equal(isInline({ ...photo, type: "application/pdf" }), false);
});

test("fitBox scales down to the box, keeps the shape, never scales up", () => {
  assert.deepEqual(fitBox(640, 480), { width: 320, height: 240 });
  assert.deepEqual(fitBox(480, 1920), { width: 80, height: 320 });
  assert.deepEqual(fitBox(100, 50), { width: 100, height: 50 });
  assert.deepEqual(fitBox(4000, 1), { width: 320, height: 1 }, "never less than a pixel");
  assert.deepEqual(fitBox(640, 480, 200, 400), { width: 200, height: 150 });
});

test("file URLs: the id escaped, the thumbnail beside it", () => {
  assert.equal(fileUrl(photo), "/api/files/f1");
  assert.equal(thumbUrl({ id: "a/b" }), "/api/files/a%2Fb/thumb");
});

test("a message in a line: its text, else what it carries", () => {
  assert.equal(messageSummary({ text: "hi", attachments: [photo] }), "hi");
  assert.equal(messageSummary({ text: "", attachments: [photo] }), "Image: cat.png");
  assert.equal(messageSummary({ text: "", attachments: [{ ...photo, type: "application/pdf" }] }), "File: cat.png");
  assert.equal(messageSummary({ text: "", attachments: [photo, photo] }), "2 files");
  assert.equal(messageSummary({ text: "" }), "");
});

test("upload errors say what happened, in words", () => {
  const body = (code, message) => ({ error: { code, message } });
  assert.match(uploadError(413, body("too_large", "over 10 MiB")), /^Too large/);
  assert.match(uploadError(413, null), /^Too large/);
  assert.match(uploadError(413, body("quota_exceeded", "quota")), /quota is full/);
  assert.equal(uploadError(400, body("bad_request", "the file is empty")), "Can't upload this file: the file is empty");
  assert.equal(uploadError(400, null), "Can't upload this file.");
  assert.match(uploadError(0, null), /connection was lost/);
  assert.match(uploadError(401, null), /sign in again/);
  assert.equal(uploadError(503, body("unavailable", "try later")), "try later");
  assert.equal(uploadError(502, null), "Upload failed (HTTP 502).");
});

function queue() {
  let changes = 0;
  const q = new UploadQueue({ onChange: () => changes++ });
  return { q, changes: () => changes };
}

test("an upload goes from uploading to done; sending takes the done ones of its room, in order", () => {
  const { q, changes } = queue();
  const a = q.add("general", { name: "a.png", size: 1000, type: "image/png" });
  const b = q.add("general", { name: "b.txt", size: 10, type: "text/plain" });
  const c = q.add("random", { name: "c.txt", size: 10, type: "text/plain" });
  assert.equal(a.status, "uploading");
  assert.notEqual(a.key, b.key);
  assert.equal(q.busy("general"), true);

  q.progress(a.key, 550, 1100); // the multipart body is a little larger than the file
  assert.equal(a.loaded, 500);
  assert.equal(UploadQueue.fraction(a), 0.5);
  q.progress(a.key, 100, 1100);
  assert.equal(a.loaded, 500, "progress never goes back");

  q.done(b.key, { id: "fb" });
  q.done(a.key, { id: "fa" });
  q.done(c.key, { id: "fc" });
  assert.equal(UploadQueue.fraction(a), 1);
  assert.equal(q.busy("general"), false);
  const before = changes();
  assert.deepEqual(q.take("general"), [{ id: "fa" }, { id: "fb" }]);
  assert.ok(changes() > before);
  assert.deepEqual(q.inRoom("general"), []);
  assert.deepEqual(q.take("general"), []);
  assert.deepEqual(
    q.inRoom("random").map((item) => item.key),
    [c.key],
  );
});

test("a failed upload stays with its error until removed, and is never sent", () => {
  const { q } = queue();
  const big = q.add("general", { name: "big.bin", size: 5, type: "" });
  q.failed(big.key, "Too large");
  q.progress(big.key, 5, 5);
  assert.equal(big.status, "failed");
  assert.equal(big.loaded, 0, "no progress after a failure");
  assert.equal(q.busy("general"), false);
  assert.deepEqual(q.take("general"), []);
  assert.equal(q.inRoom("general")[0].error, "Too large");
  assert.equal(q.remove(big.key), big);
  assert.equal(q.remove(big.key), null);
  assert.deepEqual(q.inRoom("general"), []);
});

test("one message carries at most ten files; failed ones don't count", () => {
  const { q } = queue();
  const items = [];
  for (let i = 0; i < MAX_ATTACHMENTS; i++) items.push(q.add("general", { name: `${i}`, size: 1, type: "" }));
  assert.equal(q.spaceLeft("general"), 0);
  assert.equal(q.add("general", { name: "one too many", size: 1, type: "" }), null);
  assert.equal(q.spaceLeft("random"), MAX_ATTACHMENTS, "per room");
  q.failed(items[0].key, "no");
  assert.equal(q.spaceLeft("general"), 1);
  assert.ok(q.add("general", { name: "fits", size: 1, type: "" }));
  q.clear();
  assert.deepEqual(q.inRoom("general"), []);
});
