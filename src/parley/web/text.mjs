/* Text rules shared by the views and the frame handling. DOM-free (unit-tested under Node). */

export const MAX_TEXT = 4000; // characters (code points), as the server counts them
const CLOSERS = { ")": "(", "]": "[", "}": "{" };
const MENTION_MAX = 8; // names offered at once after "@"

export function codePoints(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** At most `n` code points of `text`, with an ellipsis when cut. */
export function clip(text, n) {
  const cps = Array.from(text);
  return cps.length > n ? cps.slice(0, n).join("") + "…" : text;
}

/** Drop trailing punctuation from a URL found in text; keep a ")" that closes one inside it. */
export function trimUrl(raw) {
  for (;;) {
    const end = raw.at(-1);
    if (end && ".,;:!?".includes(end)) {
      raw = raw.slice(0, -1);
    } else if (end && end in CLOSERS && raw.split(end).length > raw.split(CLOSERS[end]).length) {
      raw = raw.slice(0, -1);
    } else {
      return raw;
    }
  }
}

/** The "@name" being typed before the caret, or null. */
export function mentionQuery(text, caret) {
  const match = /(^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{0,32})$/.exec(text.slice(0, caret));
  return match ? { start: caret - match[2].length - 1, query: match[2] } : null;
}

/** The people of `names` whose name starts with `query` (case-insensitive), others after. */
export function matchPeople(names, query, me) {
  const q = query.toLowerCase();
  const lowerMe = (me || "").toLowerCase();
  const fit = names.filter((n) => n.toLowerCase() !== lowerMe);
  const starts = fit.filter((n) => n.toLowerCase().startsWith(q));
  const inside = q ? fit.filter((n) => !n.toLowerCase().startsWith(q) && n.toLowerCase().includes(q)) : [];
  return [...starts, ...inside].slice(0, MENTION_MAX);
}
