/* A message's files in the log: images inline as their thumbnail, sized before it loads (the
 * server measured the image) so the log never jumps; a click or Enter opens the viewer
 * (viewer.mjs). Other files are cards: name, size, type, and a link that downloads them. */

import { h, icon } from "./dom.mjs";
import { fileKind, fileUrl, fitBox, formatSize, isInline, thumbUrl } from "./files.mjs";

const INLINE_MAX_W = 320; // the thumbnail's own size at most: never blurred by upscaling
const INLINE_MAX_H = 240;

/** The files of a message, or of one waiting in the outbox: images first, then the cards. */
export function attachmentList(files) {
  const box = h("div", "attachments");
  const images = files.filter(isInline);
  if (images.length) {
    const row = h("div", "att-images");
    row.append(...images.map(inlineImage));
    box.append(row);
  }
  for (const f of files) if (!isInline(f)) box.append(fileCard(f));
  return box;
}

function inlineImage(f) {
  const button = h("button", "att-image");
  button.type = "button";
  button.dataset.action = "view";
  button.dataset.file = f.id;
  button.setAttribute("aria-label", `Open the image ${f.name} (${formatSize(f.size)})`);
  button.title = f.name;
  const { width, height } = fitBox(f.width, f.height, INLINE_MAX_W, INLINE_MAX_H);
  const img = document.createElement("img");
  img.src = thumbUrl(f);
  img.alt = "";
  img.width = width;
  img.height = height;
  img.decoding = "async";
  button.append(img);
  return button;
}

function fileCard(f) {
  const kind = fileKind(f.type, f.name);
  const card = h("a", "att-card");
  card.href = fileUrl(f);
  card.download = f.name; // a file name is a label: the browser makes it safe to save under
  card.dataset.file = f.id;
  card.title = `Download ${f.name}`;
  const text = h("span", "att-card-text");
  text.append(h("span", "att-card-name", f.name), h("span", "att-card-meta", `${formatSize(f.size)} · ${kind.label}`));
  card.append(h("span", "att-card-icon"), text, icon("i-download", "att-card-download"));
  card.firstChild.append(icon(kind.icon));
  card.setAttribute("aria-label", `Download ${f.name}, ${kind.label}, ${formatSize(f.size)}`);
  return card;
}
