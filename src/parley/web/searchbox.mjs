/* The search box (Ctrl+K, or the header's button): asks GET /api/search as the person types,
 * shows the results grouped by room with the matched words marked (<mark> elements, never
 * HTML strings), walks them with ↑/↓ and opens the chosen one in its room, at that message.
 * The page binds it with `bindSearch`. */

import { api, errorMessage } from "./api.mjs";
import { h, icon } from "./dom.mjs";
import { SEARCH_LIMIT, groupResults, markRanges, markedPieces, moveActive } from "./search.mjs";
import { el } from "./views.mjs";

const TYPE_WAIT_MS = 200; // search once typing pauses this long
const HINT = "Search every room you can read: each word, or the start of one, must be in the message.";
const timeFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });

/** What this module needs from the page: {session(), openMessage(room, seq)}. */
let page = null;
let asked = 0; // the number of the last search sent: an older answer is dropped
let typingTimer = null;
let options = []; // the result elements, in order
let active = -1;

export function bindSearch(p) {
  page = p;
  el.searchBtn.addEventListener("click", openSearch);
  el.searchInput.addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(runSearch, TYPE_WAIT_MS);
  });
  el.searchInput.addEventListener("keydown", onKey);
  el.searchResults.addEventListener("click", (event) => {
    const option = event.target.closest("[role=option]");
    if (option) choose(options.indexOf(option));
  });
  el.searchClose.addEventListener("click", () => el.searchDialog.close());
  el.searchDialog.addEventListener("click", (event) => {
    if (event.target === el.searchDialog) el.searchDialog.close(); // the backdrop
  });
  el.searchDialog.addEventListener("close", () => {
    clearTimeout(typingTimer);
    asked++; // an answer still on its way is not wanted any more
  });
  document.addEventListener("keydown", (event) => {
    const ctrlK = (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k";
    if (!ctrlK || el.app.hidden) return;
    event.preventDefault();
    if (el.searchDialog.open) el.searchInput.select();
    else openSearch();
  });
}

export function openSearch() {
  if (!el.searchInput.value.trim()) setStatus(HINT);
  if (!el.searchDialog.open) el.searchDialog.showModal();
  el.searchInput.focus();
  el.searchInput.select();
}

/** The page signed out: nothing of the last person's search stays. */
export function resetSearch() {
  if (el.searchDialog.open) el.searchDialog.close();
  el.searchInput.value = "";
  showResults([], "");
  setStatus("");
}

function onKey(event) {
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    setActive(moveActive(active, options.length, event.key));
  } else if (event.key === "Enter" && !event.isComposing) {
    event.preventDefault();
    if (active >= 0) choose(active);
    else runSearch();
  }
}

async function runSearch() {
  clearTimeout(typingTimer);
  const query = el.searchInput.value.trim();
  const id = ++asked;
  if (!query) {
    showResults([], "");
    setStatus(HINT);
    return;
  }
  setStatus("Searching…");
  let res;
  try {
    res = await api("GET", `/api/search?q=${encodeURIComponent(query)}&limit=${SEARCH_LIMIT}`);
  } catch {
    if (id === asked) setStatus("Can't reach Parley: try again once you are back online.");
    return;
  }
  if (id !== asked) return;
  if (res.status === 404) {
    showResults([], query);
    setStatus("Search is not available on this server.");
  } else if (res.status !== 200 || !res.data || !Array.isArray(res.data.results)) {
    setStatus(errorMessage(res, "The search failed: try again."));
  } else {
    const count = showResults(res.data.results, query);
    if (!count) setStatus(`No messages match “${query}”.`);
    else setStatus(count >= SEARCH_LIMIT ? `The ${count} newest matches` : count === 1 ? "1 match" : `${count} matches`);
  }
}

function setStatus(text) {
  el.searchStatus.textContent = text;
  el.searchStatus.hidden = !text;
}

/** Draw the results, grouped by room; returns how many were drawn. */
function showResults(results, query) {
  const { chat } = page.session();
  const labelOf = (name) => {
    const room = chat.rooms.get(name);
    return room ? chat.label(room) : name;
  };
  const groups = groupResults(results, labelOf);
  options = [];
  active = -1;
  const frag = document.createDocumentFragment();
  for (const [g, group] of groups.entries()) {
    const box = h("div", "search-group");
    box.setAttribute("role", "group");
    const title = h("div", "search-group-title");
    title.id = `search-group-${g}`;
    const room = chat.rooms.get(group.room);
    title.append(icon(room?.isDm ? "i-at" : room?.private ? "i-lock" : "i-hash"), h("span", "", group.label));
    box.setAttribute("aria-labelledby", title.id);
    box.append(title);
    for (const m of group.items) {
      const option = resultItem(m, query, options.length);
      options.push(option);
      box.append(option);
    }
    frag.append(box);
  }
  el.searchResults.replaceChildren(frag);
  el.searchResults.hidden = options.length === 0;
  el.searchInput.setAttribute("aria-expanded", String(options.length > 0));
  el.searchInput.removeAttribute("aria-activedescendant");
  return options.length;
}

function resultItem(m, query, index) {
  const option = h("div", "search-result");
  option.id = `search-result-${index}`;
  option.setAttribute("role", "option");
  option.setAttribute("aria-selected", "false");
  option.dataset.room = m.room;
  option.dataset.seq = String(m.seq);
  const head = h("div", "search-result-head");
  head.append(h("span", "search-result-author", String(m.username ?? "")));
  const when = new Date(m.ts);
  if (!Number.isNaN(when.getTime())) {
    const time = h("time", "search-result-time", timeFmt.format(when));
    time.dateTime = when.toISOString();
    head.append(time);
  }
  const text = h("div", "search-result-text");
  for (const piece of markedPieces(m.text, markRanges(m.text, m.matches, query))) {
    text.append(piece.mark ? h("mark", "", piece.text) : document.createTextNode(piece.text));
  }
  option.append(head, text);
  return option;
}

function setActive(index) {
  if (active >= 0 && options[active]) options[active].setAttribute("aria-selected", "false");
  active = index;
  const option = options[active];
  if (!option) {
    el.searchInput.removeAttribute("aria-activedescendant");
    return;
  }
  option.setAttribute("aria-selected", "true");
  el.searchInput.setAttribute("aria-activedescendant", option.id);
  option.scrollIntoView({ block: "nearest" });
}

function choose(index) {
  const option = options[index];
  if (!option) return;
  el.searchDialog.close();
  page.openMessage(option.dataset.room, Number(option.dataset.seq));
}
