/* Search results, the pure parts: grouping by room and which characters to mark. DOM-free
 * (unit-tested under Node); the search box (searchbox.mjs) draws them. */

export const SEARCH_LIMIT = 50; // results asked for at once (the server allows 1..50)
const MAX_QUERY_WORDS = 20; // the server searches for the first 20 words of a query
const SNIPPET_MAX = 240; // code points of a long message shown around its first match
const SNIPPET_LEAD = 60; // of them, before that match

/**
 * The results (newest first) grouped by room, the groups in the order of their newest result:
 * [{room, label, items: [message...]}]. `labelOf(room)` names a room as the sidebar does.
 */
export function groupResults(results, labelOf) {
  const groups = new Map();
  for (const m of results) {
    if (!m || typeof m.room !== "string" || !Number.isInteger(m.seq) || typeof m.text !== "string") continue;
    let group = groups.get(m.room);
    if (!group) {
      group = { room: m.room, label: labelOf(m.room), items: [] };
      groups.set(m.room, group);
    }
    group.items.push(m);
  }
  return [...groups.values()];
}

/**
 * The words of a query as the server cuts them (runs of letters, digits and private-use
 * characters; anything else separates words; the first 20 different ones), each matched as
 * a prefix.
 */
export function queryWords(query) {
  const words = String(query)
    .split(/[^\p{L}\p{N}\p{Co}]+/u)
    .filter(Boolean);
  return [...new Set(words)].slice(0, MAX_QUERY_WORDS);
}

/**
 * Where to mark `text`, as sorted, merged [start, end) code-point ranges: the server's
 * `matches` when it sent valid ones, else every case-insensitive prefix match of a query word
 * at the start of a word.
 */
export function markRanges(text, matches, query) {
  const length = Array.from(text).length;
  const given = Array.isArray(matches)
    ? matches.filter((r) => Array.isArray(r) && Number.isInteger(r[0]) && Number.isInteger(r[1]))
    : null;
  const ranges = given && given.length ? given.map(([s, e]) => [Math.max(0, s), Math.min(length, e)]) : prefixRanges(text, query);
  return merge(ranges.filter(([s, e]) => s < e));
}

function prefixRanges(text, query) {
  const words = queryWords(query)
    .map((w) => w.toLowerCase())
    .sort((a, b) => b.length - a.length); // the longest word first where two start alike
  if (!words.length) return [];
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(`(?<![\\p{L}\\p{N}\\p{Co}])(?:${escaped.join("|")})`, "giu");
  const ranges = [];
  for (const match of text.matchAll(re)) {
    const start = Array.from(text.slice(0, match.index)).length;
    ranges.push([start, start + Array.from(match[0]).length]);
  }
  return ranges;
}

function merge(ranges) {
  const out = [];
  for (const [s, e] of ranges.sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1);
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * `text` as pieces to show in order, [{text, mark}], marked where `ranges` say; a long
 * message is cut to a window around its first mark, with "…" where it was cut.
 */
export function markedPieces(text, ranges, max = SNIPPET_MAX) {
  const cps = Array.from(text);
  let from = 0;
  let to = cps.length;
  if (cps.length > max) {
    from = Math.max(0, Math.min((ranges[0]?.[0] ?? 0) - SNIPPET_LEAD, cps.length - max));
    to = from + max;
  }
  const pieces = [];
  const push = (a, b, mark) => {
    if (b > a) pieces.push({ text: cps.slice(a, b).join(""), mark });
  };
  if (from > 0) pieces.push({ text: "…", mark: false });
  let at = from;
  for (const [s, e] of ranges) {
    const a = Math.max(s, from);
    const b = Math.min(e, to);
    if (b <= a) continue;
    push(at, a, false);
    push(a, b, true);
    at = b;
  }
  push(at, to, false);
  if (to < cps.length) pieces.push({ text: "…", mark: false });
  return pieces;
}

/** The next result to make active for a key (↑/↓/Home/End), wrapping around; -1 when none. */
export function moveActive(index, count, key) {
  if (!count) return -1;
  if (key === "Home") return 0;
  if (key === "End") return count - 1;
  if (key === "ArrowDown") return index < 0 ? 0 : (index + 1) % count;
  if (key === "ArrowUp") return index < 0 ? count - 1 : (index - 1 + count) % count;
  return index;
}
