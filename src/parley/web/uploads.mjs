/* Uploads from the composer: the paperclip button, a drop on the chat (the drop zone lights
 * up while files are dragged over it) and a pasted image. Each file goes up at once with
 * `POST /api/files` through XMLHttpRequest, whose `upload.onprogress` gives the progress bar
 * (fetch has none), and shows as a chip above the message box: name, size, progress, an error
 * in words, and a button that cancels or removes it. Sending takes the uploaded files
 * (`takeUploads`); the queue's logic is files.mjs's `UploadQueue`. The page binds it with
 * `bindUploads`. */

import { h, icon } from "./dom.mjs";
import { MAX_ATTACHMENTS, UploadQueue, fileKind, formatSize, normalizeFile, thumbUrl, uploadError } from "./files.mjs";
import { announce, atBottom, el, scrollToBottom } from "./views.mjs";

/**
 * What this module needs from the page: {currentRoom(): the shown room's name or null,
 * roomLabel(): how it is named on screen, toast(text)}.
 */
let page = null;
const requests = new Map(); // upload key -> its XMLHttpRequest, while it runs
const queue = new UploadQueue({ onChange: () => renderUploads() });

// ------------------------------------------------------------------ upload
/** Put `files` (File objects) on the composer of the shown room, and start them going up. */
export function addFiles(files) {
  const room = page.currentRoom();
  if (!room || !files.length) return;
  for (const file of files) {
    const item = queue.add(room, { name: file.name || "file", size: file.size, type: file.type });
    if (!item) {
      page.toast(`A message carries at most ${MAX_ATTACHMENTS} files.`);
      break;
    }
    upload(item, file);
  }
}

function upload(item, file) {
  const xhr = new XMLHttpRequest();
  requests.set(item.key, xhr);
  xhr.open("POST", "/api/files");
  xhr.responseType = "json";
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) queue.progress(item.key, event.loaded, event.total);
  });
  xhr.addEventListener("load", () => {
    requests.delete(item.key);
    const stored = xhr.status === 201 ? normalizeFile(xhr.response) : null;
    if (stored) queue.done(item.key, stored);
    else fail(item, uploadErrorOf(xhr));
  });
  xhr.addEventListener("error", () => {
    requests.delete(item.key);
    fail(item, uploadErrorOf(xhr));
  });
  const form = new FormData();
  form.append("file", file, item.name);
  xhr.send(form);
}

function uploadErrorOf(xhr) {
  return uploadError(xhr.status, xhr.response);
}

function fail(item, error) {
  queue.failed(item.key, error);
  announce(`${item.name}: ${error}`);
}

/** Cancel an upload on its way, or take a finished or failed one off the composer. */
function removeUpload(key) {
  const xhr = requests.get(key);
  requests.delete(key);
  if (xhr) xhr.abort();
  queue.remove(key);
}

/** Some file of `room` is still going up: its message waits for it. */
export function uploading(room) {
  return queue.busy(room);
}

/** The uploaded files of `room`, taken off the composer: they go with the message being sent. */
export function takeUploads(room) {
  return queue.take(room);
}

/** Signed out: every upload stops, every chip goes. */
export function resetUploads() {
  for (const xhr of requests.values()) xhr.abort();
  requests.clear();
  queue.clear();
}

// ------------------------------------------------------------------- chips
/**
 * The chips of the shown room, updated in place (a progress event must not re-create the
 * button that has the focus); new ones go at the end, as they were added.
 */
export function renderUploads() {
  const items = queue.inRoom(page?.currentRoom() ?? "");
  const stick = atBottom(); // the row grows or shrinks the log: keep its end in view
  const keys = new Set(items.map((item) => item.key));
  for (const li of [...el.uploads.children]) if (!keys.has(li.dataset.key)) li.remove();
  for (const item of items) {
    const li = el.uploads.querySelector(`li[data-key="${item.key}"]`) ?? el.uploads.appendChild(newChip(item));
    updateChip(li, item);
  }
  el.uploads.hidden = items.length === 0;
  if (stick) scrollToBottom();
}

function newChip(item) {
  const li = h("li", "upload");
  li.dataset.key = item.key;
  const body = h("span", "upload-body");
  body.append(h("span", "upload-name", item.name), h("span", "upload-meta"));
  const remove = h("button", "icon-btn icon-btn-sm upload-remove");
  remove.type = "button";
  remove.dataset.action = "remove-upload";
  remove.append(icon("i-close"));
  li.append(h("span", "upload-thumb"), body, remove);
  li.title = item.name;
  return li;
}

function updateChip(li, item) {
  if (li.dataset.status !== item.status) restyleChip(li, item);
  if (item.status === "uploading") {
    li.querySelector(".upload-meta").textContent = `${formatSize(item.loaded)} of ${formatSize(item.size)}`;
    progressBar(li, item).value = Math.floor(UploadQueue.fraction(item) * 100);
  }
}

/** The chip's status changed: its look, its icon, what its button does, what it says. */
function restyleChip(li, item) {
  const uploading = item.status === "uploading";
  li.dataset.status = item.status;
  li.className = "upload is-" + item.status;
  li.querySelector(".upload-thumb").replaceChildren(chipThumb(item));
  const remove = li.querySelector(".upload-remove");
  remove.setAttribute("aria-label", (uploading ? "Cancel the upload of " : "Remove ") + item.name);
  remove.title = uploading ? "Cancel the upload" : "Remove";
  if (uploading) return;
  li.querySelector("progress")?.remove();
  li.querySelector(".upload-meta").textContent = item.status === "failed" ? item.error : formatSize(item.size);
}

function progressBar(li, item) {
  let bar = li.querySelector("progress");
  if (!bar) {
    bar = document.createElement("progress");
    bar.className = "upload-progress";
    bar.max = 100;
    bar.setAttribute("aria-label", `Uploading ${item.name}`);
    li.querySelector(".upload-body").append(bar);
  }
  return bar;
}

/** The server's thumbnail once an image is up; until then, and for other files, an icon. */
function chipThumb(item) {
  if (item.status === "done" && item.file.width) {
    const img = document.createElement("img");
    img.src = thumbUrl(item.file);
    img.alt = "";
    return img;
  }
  return icon(item.status === "failed" ? "i-alert" : fileKind(item.type, item.name).icon);
}

function onChipClick(event) {
  const button = event.target.closest('button[data-action="remove-upload"]');
  if (!button) return;
  const li = button.closest("li[data-key]");
  const next = li.nextElementSibling ?? li.previousElementSibling;
  removeUpload(li.dataset.key);
  // The focus stays in the row of chips, or goes back to the message box.
  (next?.querySelector(".upload-remove") ?? el.input).focus();
}

// ---------------------------------------------------------- drag, drop, paste
let dragDepth = 0; // dragenter/dragleave pairs: the zone hides when the drag leaves the chat

const carriesFiles = (event) => Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");

function onDragEnter(event) {
  if (!carriesFiles(event) || !page.currentRoom()) return;
  event.preventDefault();
  dragDepth++;
  el.dropZone.hidden = false;
  el.dropRoom.textContent = page.roomLabel();
}

function onDragOver(event) {
  if (!carriesFiles(event) || !page.currentRoom()) return;
  event.preventDefault(); // this is what allows the drop
  event.dataTransfer.dropEffect = "copy";
}

function onDragLeave(event) {
  if (!carriesFiles(event)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) el.dropZone.hidden = true;
}

function onDrop(event) {
  dragDepth = 0;
  el.dropZone.hidden = true;
  if (!event.dataTransfer || !event.dataTransfer.files.length) return;
  event.preventDefault();
  addFiles([...event.dataTransfer.files]);
  el.input.focus();
}

/** A pasted image (or file) joins the uploads; pasted text stays text. */
function onPaste(event) {
  if (el.app.hidden || !event.clipboardData) return;
  const target = event.target instanceof Element ? event.target : null;
  if (target && target !== el.input && target.closest("input, textarea, dialog, [contenteditable]")) return;
  const files = [...event.clipboardData.files];
  if (!files.length) return;
  event.preventDefault();
  addFiles(files);
}

// ------------------------------------------------------------------ wiring
export function bindUploads(p) {
  page = p;
  el.attachBtn.addEventListener("click", () => el.fileInput.click());
  el.fileInput.addEventListener("change", () => {
    addFiles([...el.fileInput.files]);
    el.fileInput.value = ""; // the same file can be picked again
    el.input.focus();
  });
  el.uploads.addEventListener("click", onChipClick);
  el.chat.addEventListener("dragenter", onDragEnter);
  el.chat.addEventListener("dragover", onDragOver);
  el.chat.addEventListener("dragleave", onDragLeave);
  el.chat.addEventListener("drop", onDrop);
  // A file dropped anywhere else is not opened by the browser in place of the chat.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (carriesFiles(event)) event.preventDefault();
    });
  }
  document.addEventListener("paste", onPaste);
}
