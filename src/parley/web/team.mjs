/* Team chat on the page: the actions on a message (reply, react, edit, delete), the emoji
 * picker, @-mention completion, the topic, the members panel (remove, leave), direct messages
 * and desktop notifications. The page binds it to its session with `bindTeam`. */

import { api, errorMessage } from "./api.mjs";
import { h } from "./dom.mjs";
import { GROUPS, pushRecent, searchEmoji } from "./emoji.mjs";
import { messageSummary } from "./files.mjs";
import { plainText } from "./markdown.mjs";
import { GENERAL, USER_RE } from "./model.mjs";
import { clip, matchPeople, mentionQuery } from "./text.mjs";
import { announce, el, media, ui } from "./views.mjs";

const LONG_PRESS_MS = 450;
const TOAST_MS = 5000;
const RECENT_KEY = "parley.emoji.recent";

/**
 * What this module needs from the page: {session(), selectRoom(name, focusComposer),
 * markDirty(part, detail?), refreshMembers(room), refreshRooms()}.
 */
let page = null;

const current = () => page.session().chat.currentRoom;

// ------------------------------------------------------------------ toast
let toastTimer = null;

/** A short notice at the bottom of the page (a refused action, a room left). */
export function toast(text) {
  el.toast.textContent = text;
  el.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.toast.hidden = true;
  }, TOAST_MS);
}

// ---------------------------------------------------- confirm, in the page
let confirmed = false;
let settleConfirm = null;

/** Ask inside the page (a modal <dialog>, never window.confirm); resolves to true or false. */
export function confirmInPage({ title, text, ok }) {
  el.confirmTitle.textContent = title;
  el.confirmText.textContent = text;
  el.confirmOk.textContent = ok;
  confirmed = false;
  el.confirmDialog.showModal();
  el.confirmOk.focus();
  return new Promise((resolve) => {
    settleConfirm = resolve;
  });
}

function bindConfirm() {
  el.confirmForm.addEventListener("submit", () => {
    confirmed = true; // method="dialog": the form closes the dialog itself
  });
  el.confirmDialog.addEventListener("click", (event) => {
    if (event.target.closest("[data-close]") || event.target === el.confirmDialog) el.confirmDialog.close();
  });
  el.confirmDialog.addEventListener("close", () => {
    const settle = settleConfirm;
    settleConfirm = null;
    if (settle) settle(confirmed);
  });
}

// ------------------------------------------------------------ the actions
/** A click on the log: the tools, the chips, a reply's quote, an author's name. */
async function onLogClick(event) {
  const btn = event.target.closest("button[data-action]");
  const li = event.target.closest("li[data-seq]");
  if (!btn || !li || !btn.dataset.action) return;
  const room = current();
  const seq = Number(li.dataset.seq);
  const m = room?.messages.get(seq);
  if (!room || !m) return;
  switch (btn.dataset.action) {
    case "reply":
      return startReply(room, m);
    case "react":
      return openPicker(btn, (emoji) => react(room, m, emoji, true));
    case "chip":
      return react(room, m, btn.dataset.emoji, !m.reactions[btn.dataset.emoji]?.includes(page.session().chat.me));
    case "edit":
      return startEdit(room, m);
    case "edit-cancel":
      return stopEdit(true);
    case "delete":
      return askDelete(room, m, btn);
    case "quote":
      return jumpTo(room, Number(btn.dataset.target));
    case "dm":
      return startDm(m.username);
    default:
      return undefined;
  }
}

function closeTools() {
  if (ui.toolsOpen === null) return;
  ui.toolsOpen = null;
  for (const li of el.messages.querySelectorAll("li.tools-open")) li.classList.remove("tools-open");
}

function react(room, m, emoji, on) {
  closeTools();
  if (!emoji) return;
  if (on) saveRecent(emoji);
  if (!page.session().frames.react(room.name, m.seq, emoji, on)) toast("Not connected: try again once you are back online.");
}

function startReply(room, m) {
  closeTools();
  room.replyTo = m.seq;
  renderReplyBar();
  el.input.focus();
}

export function cancelReply() {
  const room = current();
  if (room) room.replyTo = null;
  renderReplyBar();
}

/** The "Replying to …" line above the composer, for the shown room. */
export function renderReplyBar() {
  const room = current();
  const m = room && room.replyTo ? room.messages.get(room.replyTo) : null;
  el.replyBar.hidden = !m;
  if (!m) return;
  el.replyText.replaceChildren(
    document.createTextNode("Replying to "),
    h("strong", "", m.username),
    document.createTextNode(": " + (m.deleted ? "a deleted message" : clip(plainText(m.text) || messageSummary(m), 80))),
  );
}

function startEdit(room, m) {
  closeTools();
  if (m.deleted || m.username !== page.session().chat.me) return;
  ui.editing = { room: room.name, seq: m.seq, text: m.text };
  page.markDirty("log", {});
  requestAnimationFrame(() => {
    const area = el.messages.querySelector("textarea.msg-edit-input");
    if (!area) return;
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  });
}

/** Leave the editor; `refocus`: back to the composer. */
function stopEdit(refocus) {
  if (!ui.editing) return;
  ui.editing = null;
  page.markDirty("log", {});
  if (refocus) el.input.focus();
}

async function saveEdit() {
  const editing = ui.editing;
  const room = editing && page.session().chat.rooms.get(editing.room);
  const m = room?.messages.get(editing.seq);
  if (!m) return stopEdit(true);
  const text = editing.text;
  if (text === m.text) return stopEdit(true);
  if (!text.trim()) {
    stopEdit(false);
    return askDelete(room, m, el.input);
  }
  if (!page.session().frames.edit(room.name, m.seq, text)) {
    toast("Not connected: your edit is kept, save it once you are back online.");
    return;
  }
  stopEdit(true);
}

function onEditorKey(event) {
  if (!event.target.matches("textarea.msg-edit-input")) return;
  if (event.key === "Escape") {
    event.preventDefault();
    event.stopPropagation();
    stopEdit(true);
  } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    saveEdit();
  }
}

async function askDelete(room, m, returnTo) {
  closeTools();
  const said = messageSummary(m); // its text, else its files (they go with it)
  const ok = await confirmInPage({
    title: "Delete this message?",
    text: said ? `“${clip(said, 120)}” will be replaced by “Message deleted” for everyone.` : "",
    ok: "Delete",
  });
  if (ok && !page.session().frames.deleteMessage(room.name, m.seq)) toast("Not connected: try again once you are back online.");
  (returnTo && returnTo.isConnected ? returnTo : el.input).focus();
}

/** Show a message of the shown room (a reply's quote, a search result): a short flash marks it. */
export function jumpTo(room, seq) {
  const li = el.messages.querySelector(`li[data-seq="${seq}"]`);
  if (!li) {
    toast("That message is further back: scroll up to load it.");
    return;
  }
  li.scrollIntoView({ block: "center", behavior: media.reducedMotion.matches ? "auto" : "smooth" });
  li.classList.remove("flash");
  void li.offsetWidth; // restart the animation
  li.classList.add("flash");
  li.tabIndex = -1;
  li.focus({ preventScroll: true });
}

/**
 * ↑/↓ on a message's action or chip: the same action on the message above or below (the
 * actions are in the tab order, but walking a long log by Tab is slow).
 */
function onLogArrows(event) {
  if ((event.key !== "ArrowUp" && event.key !== "ArrowDown") || event.altKey) return;
  const btn = event.target.closest(".msg-tools button, .reactions button");
  const li = btn?.closest("li.msg");
  if (!li) return;
  const items = [...el.messages.querySelectorAll("li.msg")].filter((item) => item.querySelector(".tool"));
  const next = items[items.indexOf(li) + (event.key === "ArrowDown" ? 1 : -1)];
  if (!next) return;
  event.preventDefault();
  const target = next.querySelector(`.tool[data-action="${btn.dataset.action}"]`) ?? next.querySelector(".tool");
  target.focus();
  target.scrollIntoView({ block: "nearest" });
}

// --------------------------------------------------------- long-press (touch)
let pressTimer = null;
let pressed = false; // a long-press just opened the tools: the click that follows is not a tap

function bindLongPress() {
  el.messages.addEventListener(
    "touchstart",
    (event) => {
      const li = event.target.closest("li.msg[data-seq]");
      clearTimeout(pressTimer);
      if (!li || li.classList.contains("is-deleted") || event.target.closest("button, a, textarea")) return;
      pressTimer = setTimeout(() => {
        pressed = true;
        closeTools();
        ui.toolsOpen = Number(li.dataset.seq);
        li.classList.add("tools-open");
        li.querySelector(".tool")?.focus({ preventScroll: true });
      }, LONG_PRESS_MS);
    },
    { passive: true },
  );
  for (const type of ["touchmove", "touchcancel"]) {
    el.messages.addEventListener(type, () => clearTimeout(pressTimer), { passive: true });
  }
  el.messages.addEventListener("touchend", (event) => {
    clearTimeout(pressTimer);
    if (pressed) event.preventDefault(); // no click: the tools stay open
    pressed = false;
  });
  el.messages.addEventListener("contextmenu", (event) => {
    if (ui.toolsOpen !== null && !media.finePointer.matches) event.preventDefault();
  });
  document.addEventListener("click", (event) => {
    if (ui.toolsOpen !== null && !event.target.closest(".msg-tools")) closeTools();
  });
}

// ------------------------------------------------------------ emoji picker
let pickerDone = null; // called with the emoji picked
let pickerReturn = null; // focus goes back here when it closes

function loadRecent() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(list) ? list.filter((c) => typeof c === "string").slice(0, 16) : [];
  } catch {
    return [];
  }
}

function saveRecent(emoji) {
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(pushRecent(loadRecent(), emoji)));
  } catch {
    /* private mode: no recently used list */
  }
}

function emojiButton(char, name) {
  const btn = h("button", "picker-emoji", char);
  btn.type = "button";
  btn.dataset.emoji = char;
  btn.title = name;
  btn.setAttribute("aria-label", name);
  return btn;
}

function emojiGrid(list) {
  const grid = h("div", "picker-grid");
  grid.append(...list.map((e) => emojiButton(e.char, e.name)));
  return grid;
}

function renderPicker() {
  const query = el.pickerSearch.value.trim();
  const body = [];
  if (query) {
    const hits = searchEmoji(query);
    body.push(hits.length ? emojiGrid(hits) : h("p", "picker-empty", "No emoji found"));
  } else {
    const recent = loadRecent();
    if (recent.length) {
      body.push(h("h3", "picker-title", "Recently used"));
      body.push(emojiGrid(recent.map((char) => ({ char, name: nameOf(char) }))));
    }
    for (const group of GROUPS) body.push(h("h3", "picker-title", group.name), emojiGrid(group.emoji));
  }
  el.pickerBody.replaceChildren(...body);
  el.pickerBody.scrollTop = 0;
}

function nameOf(char) {
  for (const group of GROUPS) for (const e of group.emoji) if (e.char === char) return e.name;
  return char;
}

/** Open the picker by `anchor`; `done(emoji)` when one is picked. */
function openPicker(anchor, done) {
  pickerDone = done;
  pickerReturn = anchor;
  el.pickerSearch.value = "";
  renderPicker();
  el.picker.hidden = false;
  placePicker(anchor);
  el.pickerSearch.focus();
}

function placePicker(anchor) {
  el.picker.classList.remove("is-above");
  if (media.narrow.matches) return; // a sheet at the bottom (CSS)
  const rect = anchor.getBoundingClientRect();
  const width = el.picker.offsetWidth;
  const height = el.picker.offsetHeight;
  const left = Math.max(8, Math.min(window.innerWidth - width - 8, rect.right - width));
  const below = rect.bottom + 6 + height <= window.innerHeight;
  const top = below ? rect.bottom + 6 : Math.max(8, rect.top - height - 6);
  el.picker.style.setProperty("--picker-left", `${left}px`);
  el.picker.style.setProperty("--picker-top", `${top}px`);
}

function closePicker(refocus) {
  if (el.picker.hidden) return;
  el.picker.hidden = true;
  pickerDone = null;
  if (refocus && pickerReturn && pickerReturn.isConnected) pickerReturn.focus();
  else if (refocus) el.input.focus();
  pickerReturn = null;
}

function pickEmoji(char) {
  const done = pickerDone;
  closePicker(true); // the focus goes back to what opened the picker
  if (done) done(char);
}

/** Arrow keys move between the emoji of the grid (by rows as laid out). */
function moveInGrid(event) {
  const buttons = [...el.pickerBody.querySelectorAll(".picker-emoji")];
  const i = buttons.indexOf(document.activeElement);
  if (event.key === "ArrowDown" && document.activeElement === el.pickerSearch) {
    event.preventDefault();
    buttons[0]?.focus();
    return;
  }
  if (i < 0) return;
  const here = buttons[i].getBoundingClientRect();
  let next = null;
  if (event.key === "ArrowRight") next = buttons[i + 1];
  else if (event.key === "ArrowLeft") next = buttons[i - 1];
  else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    const down = event.key === "ArrowDown";
    const row = (b) => b.getBoundingClientRect().top;
    const candidates = buttons.filter((b) => (down ? row(b) > here.top + 4 : row(b) < here.top - 4));
    const nextRow = down ? Math.min(...candidates.map(row)) : Math.max(...candidates.map(row));
    const inRow = candidates.filter((b) => Math.abs(row(b) - nextRow) < 4);
    next = inRow.reduce(
      (best, b) =>
        !best || Math.abs(b.getBoundingClientRect().left - here.left) < Math.abs(best.getBoundingClientRect().left - here.left)
          ? b
          : best,
      null,
    );
    if (!next && !down) next = el.pickerSearch;
  } else {
    return;
  }
  if (next) {
    event.preventDefault();
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  }
}

function bindPicker() {
  el.pickerSearch.addEventListener("input", renderPicker);
  el.pickerSearch.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const first = el.pickerBody.querySelector(".picker-emoji");
      if (first) pickEmoji(first.dataset.emoji);
    }
  });
  el.picker.addEventListener("click", (event) => {
    const btn = event.target.closest(".picker-emoji");
    if (btn) pickEmoji(btn.dataset.emoji);
  });
  el.picker.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closePicker(true);
    } else if (event.key === "Tab") {
      // Focus stays in the picker while it is open.
      const focusables = [el.pickerSearch, ...el.pickerBody.querySelectorAll(".picker-emoji")];
      const first = focusables[0];
      const last = focusables.at(-1);
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    } else {
      moveInGrid(event);
    }
  });
  document.addEventListener("pointerdown", (event) => {
    if (!el.picker.hidden && !el.picker.contains(event.target) && !event.target.closest("[data-action='react'], #emoji-btn")) {
      closePicker(false);
    }
  });
  el.emojiBtn.addEventListener("click", () => {
    if (!el.picker.hidden) return closePicker(true);
    openPicker(el.emojiBtn, insertInComposer);
  });
}

function insertInComposer(char) {
  saveRecent(char);
  const { selectionStart: start, selectionEnd: end, value } = el.input;
  el.input.value = value.slice(0, start) + char + value.slice(end);
  el.input.focus();
  el.input.setSelectionRange(start + char.length, start + char.length);
  el.input.dispatchEvent(new Event("input"));
}

// ------------------------------------------------------ mention completion
let mention = null; // {start, query, names, index} while the list is open
let dismissedAt = -1; // where the "@" query the person closed with Escape starts

/**
 * The room's people changed (members, presence, history): an "@" typed before they arrived
 * gets its list now, unless the person closed it.
 */
export function peopleChanged() {
  if (document.activeElement !== el.input) return;
  const found = mentionQuery(el.input.value, el.input.selectionStart);
  if (found && found.start !== dismissedAt) composerInput();
}

export function composerInput() {
  const room = current();
  const found = room && el.input.selectionStart === el.input.selectionEnd ? mentionQuery(el.input.value, el.input.selectionStart) : null;
  if (!found) return closeMentions();
  const { chat } = page.session();
  const names = matchPeople(chat.peopleIn(room), found.query, chat.me);
  if (!names.length) return closeMentions();
  const keep = mention && mention.names[mention.index];
  mention = { ...found, names, index: Math.max(0, names.indexOf(keep)) };
  renderMentions();
}

function renderMentions() {
  el.mentionList.replaceChildren(
    ...mention.names.map((name, i) => {
      const li = h("li", "mention-option", name);
      li.id = `mention-opt-${i}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === mention.index));
      li.dataset.name = name;
      return li;
    }),
  );
  el.mentionList.hidden = false;
  el.input.setAttribute("aria-expanded", "true");
  el.input.setAttribute("aria-activedescendant", `mention-opt-${mention.index}`);
}

function closeMentions() {
  mention = null;
  el.mentionList.hidden = true;
  el.input.setAttribute("aria-expanded", "false");
  el.input.removeAttribute("aria-activedescendant");
}

function pickMention(name) {
  if (!mention) return;
  const { start } = mention;
  const end = el.input.selectionStart;
  const value = el.input.value;
  const insert = `@${name} `;
  el.input.value = value.slice(0, start) + insert + value.slice(end);
  el.input.setSelectionRange(start + insert.length, start + insert.length);
  closeMentions();
  el.input.focus();
  el.input.dispatchEvent(new Event("input"));
}

/**
 * Keys in the composer before the page's own (Enter sends): the mention list, Up to edit
 * your last message, Escape to drop a reply. Returns true when the key was used here.
 */
export function composerKeydown(event) {
  if (event.isComposing) return false;
  if (mention) {
    const n = mention.names.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      mention.index = (mention.index + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
      renderMentions();
    } else if (event.key === "Enter" || event.key === "Tab") {
      pickMention(mention.names[mention.index]);
    } else if (event.key === "Escape") {
      dismissedAt = mention.start;
      closeMentions();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }
  const room = current();
  if (event.key === "ArrowUp" && !el.input.value && room && !event.shiftKey && !event.altKey) {
    const last = room.lastOwn(page.session().chat.me);
    if (!last) return false;
    event.preventDefault();
    startEdit(room, last);
    return true;
  }
  if (event.key === "Escape" && room && room.replyTo) {
    event.preventDefault();
    cancelReply();
    return true;
  }
  return false;
}

// ------------------------------------------------------------------ topic
function openTopic() {
  const room = current();
  if (!room) return;
  el.topicInput.value = room.topic || "";
  el.roomSub.hidden = true;
  el.topicForm.hidden = false;
  el.topicInput.focus();
  el.topicInput.select();
}

function closeTopic(refocus) {
  el.topicForm.hidden = true;
  el.roomSub.hidden = false;
  if (refocus) el.topicBtn.focus();
}

async function saveTopic(event) {
  event.preventDefault();
  const room = current();
  if (!room) return;
  const topic = el.topicInput.value.trim();
  closeTopic(true);
  if (topic === (room.topic || "")) return;
  if (page.session().frames.setTopic(room.name, topic)) return;
  try {
    const res = await api("PATCH", `/api/rooms/${encodeURIComponent(room.name)}`, { topic });
    if (res.status === 200) {
      room.topic = typeof res.data?.topic === "string" ? res.data.topic : topic;
      page.markDirty("header");
    } else {
      toast(errorMessage(res, `Could not set the topic (${res.status}).`));
    }
  } catch {
    toast("Can't reach Parley right now. Try again in a moment.");
  }
}

// ---------------------------------------------------- members: remove, leave
async function onMembersClick(event) {
  const btn = event.target.closest("button[data-action]");
  const li = event.target.closest("li[data-user]");
  if (!btn || !li) return;
  const name = li.dataset.user;
  if (btn.dataset.action === "dm") return startDm(name);
  if (btn.dataset.action === "remove") return removeMember(current(), name, btn);
  return undefined;
}

async function removeMember(room, name, returnTo) {
  if (!room) return;
  const ok = await confirmInPage({
    title: `Remove ${name}?`,
    text: `${name} will no longer see #${room.name} or its history.`,
    ok: "Remove",
  });
  if (!ok) return returnTo.isConnected ? returnTo.focus() : el.membersBtn.focus();
  try {
    const res = await api("DELETE", `/api/rooms/${encodeURIComponent(room.name)}/members/${encodeURIComponent(name)}`);
    if (res.status === 204 || res.status === 200) {
      if (room.members) room.members = room.members.filter((m) => m !== name);
      room.online.delete(name);
      announce(`${name} was removed from ${room.name}`);
      page.refreshMembers(room);
      page.markDirty("members");
    } else {
      toast(errorMessage(res, `Could not remove ${name} (${res.status}).`));
    }
  } catch {
    toast("Can't reach Parley right now. Try again in a moment.");
  }
  el.membersBtn.focus();
}

async function leaveRoom() {
  const room = current();
  const { chat } = page.session();
  if (!room || !room.private || room.isDm || !chat.me) return;
  const ok = await confirmInPage({
    title: `Leave #${room.name}?`,
    text: "You will need a new invitation to come back.",
    ok: "Leave",
  });
  if (!ok) return el.leaveBtn.focus();
  try {
    const res = await api("DELETE", `/api/rooms/${encodeURIComponent(room.name)}/members/${encodeURIComponent(chat.me)}`);
    if (res.status === 204 || res.status === 200) {
      roomGone(room, `You left #${room.name}.`);
      page.refreshRooms();
    } else {
      toast(errorMessage(res, `Could not leave (${res.status}).`));
    }
  } catch {
    toast("Can't reach Parley right now. Try again in a moment.");
  }
}

/** We are out of `room` (left, or removed by its owner): it leaves the sidebar. */
export function roomGone(room, notice) {
  const { chat, outbox } = page.session();
  const label = chat.label(room);
  const wasCurrent = chat.current === room.name;
  chat.removeRoom(room.name);
  outbox.keepRooms((name) => name !== room.name);
  page.markDirty("rooms");
  toast(notice || `You are no longer in ${room.isDm ? label : "#" + room.name}.`);
  if (wasCurrent) page.selectRoom(GENERAL, true);
}

// -------------------------------------------------------------------- DMs
function openDmDialog() {
  el.dmForm.reset();
  el.dmError.textContent = "";
  el.dmDialog.showModal();
  el.dmName.focus();
}

async function submitDm(event) {
  event.preventDefault();
  const name = el.dmName.value.trim().replace(/^@/, "");
  if (!USER_RE.test(name)) {
    el.dmError.textContent = "Enter a username.";
    el.dmName.focus();
    return;
  }
  const error = await startDm(name);
  if (error) {
    el.dmError.textContent = error;
    el.dmName.focus();
  } else {
    el.dmDialog.close();
  }
}

/** Open the DM with `name` (POST /api/dms: the same people always get the same room). */
export async function startDm(name) {
  const owner = page.session();
  try {
    const res = await api("POST", "/api/dms", { users: [name] });
    if (owner !== page.session()) return null;
    if ((res.status === 200 || res.status === 201) && res.data && typeof res.data.room === "string") {
      const room = owner.chat.describe({ kind: "dm", private: true, ...res.data });
      owner.frames.joinAll();
      page.markDirty("rooms");
      page.selectRoom(room.name, true);
      return null;
    }
    const text = res.status === 404 ? `There is no user named “${name}”.` : errorMessage(res, `Could not open the conversation (${res.status}).`);
    if (!el.dmDialog.open) toast(text);
    return text;
  } catch {
    const text = "Can't reach Parley right now. Try again in a moment.";
    if (!el.dmDialog.open) toast(text);
    return text;
  }
}

// ----------------------------------------------------- desktop notifications
const canNotify = () => typeof Notification !== "undefined";

/** The button that asks for permission (from a click, never on load): while undecided. */
export function renderNotifyButton() {
  el.notifyBtn.hidden = !canNotify() || Notification.permission !== "default";
}

async function askNotifications() {
  if (!canNotify()) return;
  try {
    await Notification.requestPermission();
  } catch {
    /* an old browser with the callback form only: leave it */
  }
  renderNotifyButton();
  if (Notification.permission === "granted") toast("Desktop notifications are on for mentions and direct messages.");
}

/** A mention or a DM arrived: a desktop notification while the page is hidden. */
export function alertPerson({ room, username, text }) {
  if (document.visibilityState !== "hidden" || !canNotify() || Notification.permission !== "granted") return;
  const { chat } = page.session();
  const title = room.isDm ? username : `${username} in #${room.name}`;
  try {
    const note = new Notification(title, { body: clip(plainText(text || ""), 140), tag: room.name });
    note.addEventListener("click", () => {
      window.focus();
      if (chat.rooms.has(room.name)) page.selectRoom(room.name, true);
      note.close();
    });
  } catch {
    /* some browsers allow them from a service worker only */
  }
}

// ------------------------------------------------------------------ wiring
export function bindTeam(p) {
  page = p;
  bindConfirm();
  bindPicker();
  bindLongPress();
  el.messages.addEventListener("click", onLogClick);
  el.messages.addEventListener("keydown", onEditorKey);
  el.messages.addEventListener("keydown", onLogArrows);
  el.messages.addEventListener("input", (event) => {
    if (ui.editing && event.target.matches("textarea.msg-edit-input")) ui.editing.text = event.target.value;
  });
  el.messages.addEventListener("submit", (event) => {
    if (!event.target.matches("form.msg-edit")) return;
    event.preventDefault();
    saveEdit();
  });
  el.replyCancel.addEventListener("click", () => {
    cancelReply();
    el.input.focus();
  });
  el.mentionList.addEventListener("mousedown", (event) => {
    const option = event.target.closest("[data-name]");
    if (!option) return;
    event.preventDefault(); // keep the focus in the composer
    pickMention(option.dataset.name);
  });
  el.input.addEventListener("blur", () => setTimeout(() => document.activeElement !== el.input && closeMentions(), 0));
  el.topicBtn.addEventListener("click", openTopic);
  el.topicForm.addEventListener("submit", saveTopic);
  el.topicCancel.addEventListener("click", () => closeTopic(true));
  el.topicInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeTopic(true);
    }
  });
  el.membersPanel.addEventListener("click", onMembersClick);
  el.leaveBtn.addEventListener("click", leaveRoom);
  el.newDm.addEventListener("click", openDmDialog);
  el.dmForm.addEventListener("submit", submitDm);
  el.dmDialog.addEventListener("click", (event) => {
    if (event.target.closest("[data-close]") || event.target === el.dmDialog) el.dmDialog.close();
  });
  el.notifyBtn.addEventListener("click", askNotifications);
  renderNotifyButton();
}

/** The shown room changed: what belonged to the last one closes. */
export function roomSwitched() {
  ui.editing = null;
  closeTools();
  closeMentions();
  closePicker(false);
  closeTopic(false);
  renderReplyBar();
}

/** Signed out: nothing stays open. */
export function reset() {
  roomSwitched();
  for (const dialog of [el.confirmDialog, el.dmDialog]) if (dialog.open) dialog.close();
  el.toast.hidden = true;
}
