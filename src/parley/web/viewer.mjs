/* The image viewer: a modal <dialog> over the chat with the full image, its name, who shared
 * it, and a download link. ← and → (or the buttons at its sides) move between the images of
 * the room, in the order they were posted; Escape, the close button or a click outside the
 * image closes it, and the focus goes back to the image in the log. The page binds it with
 * `bindViewer`. */

import { fileUrl, formatSize, isInline } from "./files.mjs";
import { el } from "./views.mjs";

/** What this module needs from the page: {session()}. */
let page = null;
let images = []; // [{file, username}] of the room, in the order they were posted
let index = 0;
let opener = null; // the element that had the focus when the viewer opened

/** The images of the shown room: its messages', then those of its messages still being sent. */
function roomImages() {
  const { chat, outbox } = page.session();
  const room = chat.currentRoom;
  if (!room) return [];
  const imagesOf = (files, username) => files.filter(isInline).map((file) => ({ file, username }));
  return [
    ...room.sortedMessages().flatMap((m) => imagesOf(m.attachments, m.username)),
    ...outbox.inRoom(room.name).flatMap((item) => imagesOf(item.attachments, chat.me)),
  ];
}

/** Open the viewer on the image `fileId` of the shown room. */
export function openViewer(fileId) {
  images = roomImages();
  index = images.findIndex((entry) => entry.file.id === fileId);
  if (index < 0) return;
  opener = document.activeElement;
  show();
  if (!el.viewer.open) el.viewer.showModal();
  el.viewerClose.focus();
}

function show() {
  const { file, username } = images[index];
  el.viewerImg.src = fileUrl(file);
  el.viewerImg.width = file.width;
  el.viewerImg.height = file.height;
  el.viewerImg.alt = file.name;
  el.viewerName.textContent = file.name;
  el.viewerMeta.textContent = `${username} · ${file.width} × ${file.height} · ${formatSize(file.size)}`;
  el.viewerCount.textContent = images.length > 1 ? `${index + 1} of ${images.length}` : "";
  el.viewerDownload.href = fileUrl(file);
  el.viewerDownload.download = file.name;
  el.viewerDownload.setAttribute("aria-label", `Download ${file.name}`);
  el.viewerPrev.disabled = index === 0;
  el.viewerNext.disabled = index === images.length - 1;
  el.viewerPrev.hidden = el.viewerNext.hidden = images.length < 2;
  // A button disabled under the focus drops it out of the dialog: keep it inside.
  if (el.viewer.open && document.activeElement?.disabled) el.viewerClose.focus();
}

function move(step) {
  const next = index + step;
  if (next < 0 || next >= images.length) return;
  index = next;
  show();
}

/** Closed (Escape, the button, a click outside): back to the image now shown, else the opener. */
function onClose() {
  const id = images[index]?.file.id;
  const thumbs = document.querySelectorAll('#messages [data-action="view"], #pending [data-action="view"]');
  const thumb = [...thumbs].find((node) => node.dataset.file === id);
  const target = thumb ?? (opener && opener.isConnected ? opener : el.input);
  el.viewerImg.removeAttribute("src"); // a large image is not kept in memory behind the chat
  images = [];
  opener = null;
  target.focus();
}

/** ← and → move; Escape is the dialog's own (its `cancel` closes it). */
function onKey(event) {
  if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
    event.preventDefault();
    move(event.key === "ArrowLeft" ? -1 : 1);
  }
}

/** A click on the dark around the image (not on it, nor on a button or the link) closes. */
function onViewerClick(event) {
  if (event.target === el.viewer || event.target === el.viewerStage) el.viewer.close();
}

function onLogClick(event) {
  const button = event.target.closest('button[data-action="view"]');
  if (button) openViewer(button.dataset.file);
}

export function bindViewer(p) {
  page = p;
  el.messages.addEventListener("click", onLogClick);
  el.pending.addEventListener("click", onLogClick);
  document.addEventListener("keydown", (event) => {
    if (el.viewer.open) onKey(event);
  });
  el.viewer.addEventListener("click", onViewerClick);
  el.viewer.addEventListener("close", onClose);
  el.viewerClose.addEventListener("click", () => el.viewer.close());
  el.viewerPrev.addEventListener("click", () => move(-1));
  el.viewerNext.addEventListener("click", () => move(1));
}

/** Signed out, or the room changed under it: the viewer closes. */
export function closeViewer() {
  if (el.viewer.open) el.viewer.close();
}
