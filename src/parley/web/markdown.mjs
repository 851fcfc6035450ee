/* Safe markdown for messages: a small subset (emphasis, strong, strikethrough, inline code,
 * fenced code blocks, links, block quotes, lists) parsed into a tree of plain objects, then
 * built as DOM nodes: never HTML strings, never innerHTML. The stored and sent text stays the
 * raw text; this is only how it is shown.
 *
 * The parser works in one pass per line and per inline run, with no regular expression that
 * can backtrack on long input: a 4,000-character hostile message costs about as much as a
 * plain one. `parse` is DOM-free (unit-tested under Node); `render` takes the document. */

import { trimUrl } from "./text.mjs";

const MAX_QUOTE_DEPTH = 3; // "> > > x" nests; deeper markers stay text
const FENCE_OPEN_RE = /^ {0,3}```[ \t]*([A-Za-z0-9_+.#-]{0,32})[ \t]*$/;
const FENCE_CLOSE_RE = /^ {0,3}```[ \t]*$/;
const QUOTE_RE = /^ {0,3}> ?/;
const BULLET_RE = /^ {0,3}[-*+] (.*)$/s;
const NUMBER_RE = /^ {0,3}(\d{1,9})[.)] (.*)$/s;
const URL_AT_RE = /https?:\/\/[^\s<>"'`]+/iy; // sticky: a bare URL starting exactly here
const WORD_RE = /[\p{L}\p{N}_]/u;
const SPACE_RE = /\s/;
const ESCAPABLE = "\\*_~[]()>#+-.!`";
const LINK_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const EMPHASIS = { "*": ["em", "strong"], _: ["em", "strong"], "~": [null, "del"] };

/**
 * The link target when `candidate` is an absolute http, https or mailto URL, else null
 * (javascript:, data:, relative paths and the rest stay text).
 */
export function safeLink(candidate) {
  try {
    const url = new URL(candidate);
    return LINK_PROTOCOLS.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * The message `text` as a list of blocks:
 * {type: "paragraph", children} | {type: "codeblock", lang, text} | {type: "quote", children: blocks}
 * | {type: "list", ordered, start, items: [inline children]}. Inline nodes:
 * {type: "text", text} | {type: "code", text} | {type: "em"|"strong"|"del", children}
 * | {type: "link", href, children}.
 */
export function parse(text) {
  return parseBlocks(String(text).split("\n"), 0);
}

/** The text without its markup, on one line: for a reply's quote and other short previews. */
export function plainText(text) {
  const inline = (nodes) => nodes.map((n) => (n.type === "text" || n.type === "code" ? n.text : inline(n.children))).join("");
  const block = (b) => {
    if (b.type === "paragraph") return inline(b.children);
    if (b.type === "codeblock") return b.text;
    if (b.type === "quote") return b.children.map(block).join(" ");
    return b.items.map(inline).join(" ");
  };
  return parse(text).map(block).join(" ").replace(/\s+/g, " ").trim();
}

// ------------------------------------------------------------------ blocks
function parseBlocks(lines, depth) {
  const blocks = [];
  const fences = new FenceFinder(lines);
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    const fence = FENCE_OPEN_RE.exec(line);
    const end = fence ? fences.closeAfter(i) : -1;
    if (end >= 0) {
      blocks.push({ type: "codeblock", lang: fence[1], text: lines.slice(i + 1, end).join("\n") });
      i = end + 1;
    } else if (depth < MAX_QUOTE_DEPTH && QUOTE_RE.test(line)) {
      const inner = [];
      while (i < lines.length && QUOTE_RE.test(lines[i])) inner.push(lines[i++].replace(QUOTE_RE, ""));
      blocks.push({ type: "quote", children: parseBlocks(inner, depth + 1) });
    } else if (listItem(line)) {
      const first = listItem(line);
      const items = [];
      for (let item = first; item && item.ordered === first.ordered; item = listItem(lines[i] ?? "")) {
        items.push(parseInline(item.text));
        i++;
      }
      blocks.push({ type: "list", ordered: first.ordered, start: first.start, items });
    } else {
      const para = [line];
      i++;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i], depth, fences, i)) para.push(lines[i++]);
      blocks.push({ type: "paragraph", children: parseInline(para.join("\n")) });
    }
  }
  return blocks;
}

/** Where each fence closes; once none closes after a line, none closes after a later one. */
class FenceFinder {
  constructor(lines) {
    this.lines = lines;
    this.noneAfter = Infinity;
  }

  closeAfter(i) {
    if (i >= this.noneAfter) return -1;
    for (let j = i + 1; j < this.lines.length; j++) if (FENCE_CLOSE_RE.test(this.lines[j])) return j;
    this.noneAfter = i;
    return -1;
  }
}

function startsBlock(line, depth, fences, i) {
  if (FENCE_OPEN_RE.test(line) && fences.closeAfter(i) >= 0) return true;
  return (depth < MAX_QUOTE_DEPTH && QUOTE_RE.test(line)) || listItem(line) !== null;
}

function listItem(line) {
  const bullet = BULLET_RE.exec(line);
  if (bullet && bullet[1].trim()) return { ordered: false, start: 1, text: bullet[1] };
  const number = NUMBER_RE.exec(line);
  if (number && number[2].trim()) return { ordered: true, start: Number(number[1]), text: number[2] };
  return null;
}

// ------------------------------------------------------------------ inline
/** Inline nodes of `src`; `inLink`: no links inside a link's text. */
export function parseInline(src, inLink = false) {
  const tokens = tokenize(src, inLink);
  matchDelimiters(tokens);
  return buildTree(tokens);
}

/**
 * Cut `src` into tokens: text, code spans, links (atomic) and runs of `*`, `_` or `~~`
 * (delimiters, matched afterwards). Every position is looked at a bounded number of times.
 */
function tokenize(src, inLink) {
  const tokens = [];
  const ticks = new TickRuns(src);
  const find = new Finder(src);
  let text = "";
  const flush = () => {
    if (text) tokens.push({ t: "text", text });
    text = "";
  };
  let i = 0;
  while (i < src.length) {
    const ch = src[i];
    if (ch === "\\" && i + 1 < src.length && ESCAPABLE.includes(src[i + 1])) {
      text += src[i + 1];
      i += 2;
    } else if (ch === "`") {
      const run = ticks.lengthAt(i);
      const close = ticks.closerOf(i);
      flush();
      if (close >= 0) tokens.push({ t: "code", text: codeText(src.slice(i + run, close)) });
      else text += src.slice(i, i + run);
      i = close >= 0 ? close + run : i + run;
    } else if (ch === "*" || ch === "_" || ch === "~") {
      let n = 1;
      while (src[i + n] === ch) n++;
      if (ch === "~" && n !== 2) text += src.slice(i, i + n);
      else {
        flush();
        tokens.push(delimiter(src, i, n));
      }
      i += n;
    } else {
      const atom = inLink ? null : linkOrUrlAt(src, i, find);
      if (atom) {
        flush();
        tokens.push(atom.token);
        i = atom.end;
      } else {
        text += ch;
        i++;
      }
    }
  }
  flush();
  return tokens;
}

/** A code span's text: one space each side is padding when both are there (`` ` `` `` ` ``). */
function codeText(inner) {
  if (inner.length > 2 && inner[0] === " " && inner.at(-1) === " " && inner.trim()) return inner.slice(1, -1);
  return inner;
}

/** Runs of backticks: a run opens a code span closed by the next run of the same length. */
class TickRuns {
  constructor(src) {
    this.runs = new Map(); // start -> {length, next: the start of the next run of that length, or -1}
    const lastOfLength = new Map();
    for (let i = src.indexOf("`"); i >= 0; ) {
      let n = 1;
      while (src[i + n] === "`") n++;
      const run = { length: n, next: -1 };
      const previous = lastOfLength.get(n);
      if (previous) previous.next = i;
      lastOfLength.set(n, run);
      this.runs.set(i, run);
      i = src.indexOf("`", i + n);
    }
  }

  lengthAt(i) {
    return this.runs.get(i)?.length ?? 1;
  }

  closerOf(i) {
    return this.runs.get(i)?.next ?? -1;
  }
}

/** indexOf with memory: the scan only moves forward, so each stretch is searched once. */
class Finder {
  constructor(src) {
    this.src = src;
    this.last = new Map(); // char -> {from, at}: no char in [from, at)
  }

  next(ch, from) {
    const last = this.last.get(ch);
    if (last && last.from <= from && (last.at === -1 || last.at >= from)) return last.at;
    const at = this.src.indexOf(ch, from);
    this.last.set(ch, { from, at });
    return at;
  }

  /** The ")" that closes the "(" at `i` with no white space between them, or -1. */
  closingParen(i) {
    if (!this.parens) {
      this.parens = new Map(); // one pass for the whole text
      const open = [];
      for (let j = 0; j < this.src.length; j++) {
        const c = this.src[j];
        if (c === "(") open.push(j);
        else if (c === ")" && open.length) this.parens.set(open.pop(), j);
        else if (SPACE_RE.test(c)) open.length = 0;
      }
    }
    return this.parens.get(i) ?? -1;
  }
}

/** A link (`[label](url)`) or a bare URL starting at `i`: {token, end}, or null. */
function linkOrUrlAt(src, i, find) {
  const ch = src[i];
  if (ch === "[") {
    const link = linkAt(src, i, find);
    if (!link) return null;
    const token = link.href
      ? { t: "link", href: link.href, children: parseInline(link.label, true) }
      : { t: "text", text: src.slice(i, link.end) }; // refused: its source, as text
    return { token, end: link.end };
  }
  if ((ch !== "h" && ch !== "H") || WORD_RE.test(src[i - 1] ?? " ")) return null;
  const raw = bareUrlAt(src, i);
  if (!raw) return null;
  const href = safeLink(raw);
  const token = href ? { t: "link", href, children: [{ type: "text", text: raw }] } : { t: "text", text: raw };
  return { token, end: i + raw.length };
}

/**
 * `[label](url)` starting at `i`: {label, href (null when refused), end}, or null when this
 * is no link at all (the "[" is then text). The label holds no "[" or "]"; the URL no space.
 */
function linkAt(src, i, find) {
  const close = find.next("]", i + 1);
  if (close < 0 || src[close + 1] !== "(") return null;
  const open = find.next("[", i + 1);
  if (open >= 0 && open < close) return null;
  const end = find.closingParen(close + 1);
  const label = src.slice(i + 1, close);
  if (end < 0 || !label.trim()) return null;
  return { label, href: safeLink(src.slice(close + 2, end)), end: end + 1 };
}

/** The bare http(s) URL starting at `i`, without trailing punctuation or markers, or null. */
function bareUrlAt(src, i) {
  URL_AT_RE.lastIndex = i;
  const match = URL_AT_RE.exec(src);
  if (!match) return null;
  let raw = match[0];
  for (let before = ""; before !== raw; ) {
    before = raw;
    raw = trimUrl(raw);
    let end = raw.length;
    while (end > 0 && "*_~".includes(raw[end - 1])) end--;
    raw = raw.slice(0, end);
  }
  return /^https?:\/\/./i.test(raw) ? raw : null;
}

/** A run of `n` × `ch` at `i`: whether it may open or close, by what is either side of it. */
function delimiter(src, i, n) {
  const ch = src[i];
  const before = src[i - 1] ?? " ";
  const after = src[i + n] ?? " ";
  let canOpen = !SPACE_RE.test(after);
  let canClose = !SPACE_RE.test(before);
  if (ch === "_") {
    // snake_case_names stay text: "_" opens or closes only at a word's edge.
    canOpen &&= !WORD_RE.test(before);
    canClose &&= !WORD_RE.test(after);
  }
  return { t: "delim", ch, n, canOpen, canClose, closes: [], opens: [] };
}

/**
 * Pair the delimiter runs (CommonMark's delimiter stack, simplified): each closer takes the
 * nearest opener of its character; the openers between them become text. `bottom` remembers,
 * per character, how far down no opener is left, so the work stays linear.
 */
function matchDelimiters(tokens) {
  const stack = [];
  const bottom = { "*": 0, _: 0, "~": 0 };
  tokens.forEach((tok) => {
    if (tok.t !== "delim") return;
    while (tok.canClose && tok.n > 0) {
      let p = stack.length - 1;
      const floor = bottom[tok.ch];
      while (p >= floor && stack[p].ch !== tok.ch) p--;
      if (p < floor) {
        bottom[tok.ch] = stack.length;
        break;
      }
      const opener = stack[p];
      stack.length = p + 1; // the openers in between can no longer open
      lowerBottoms(bottom, p);
      const use = tok.ch === "~" || (opener.n >= 2 && tok.n >= 2) ? 2 : 1;
      const kind = EMPHASIS[tok.ch][use - 1];
      opener.n -= use;
      tok.n -= use;
      opener.opens.unshift(kind); // the innermost pair is matched first
      tok.closes.push(kind);
      if (opener.n === 0) {
        stack.pop();
        lowerBottoms(bottom, p);
      }
    }
    if (tok.canOpen && tok.n > 0) stack.push(tok);
  });
}

function lowerBottoms(bottom, size) {
  for (const ch of Object.keys(bottom)) bottom[ch] = Math.min(bottom[ch], size);
}

/** Nest the tokens into nodes; what did not pair stays text. */
function buildTree(tokens) {
  const root = { children: [] };
  const open = [root];
  const addText = (text) => {
    const children = open.at(-1).children;
    const last = children.at(-1);
    if (last && last.type === "text") last.text += text;
    else if (text) children.push({ type: "text", text });
  };
  for (const tok of tokens) {
    if (tok.t === "text") addText(tok.text);
    else if (tok.t === "code") open.at(-1).children.push({ type: "code", text: tok.text });
    else if (tok.t === "link") open.at(-1).children.push({ type: "link", href: tok.href, children: tok.children });
    else {
      for (const _ of tok.closes) open.pop();
      addText(tok.ch.repeat(tok.n));
      for (const kind of tok.opens) {
        const node = { type: kind, children: [] };
        open.at(-1).children.push(node);
        open.push(node);
      }
    }
  }
  return root.children;
}

// ------------------------------------------------------------------ render
/**
 * The DOM nodes of `blocks` (from `parse`) in a fragment of `doc`. `appendText(parent, text)`
 * adds plain text (the page highlights mentions there); code is always plain text nodes.
 */
export function render(blocks, doc, appendText = (parent, text) => parent.append(doc.createTextNode(text))) {
  const frag = doc.createDocumentFragment();
  const make = (tag, className) => {
    const node = doc.createElement(tag);
    if (className) node.className = className;
    return node;
  };
  const inline = (parent, nodes) => {
    for (const node of nodes) {
      if (node.type === "text") appendText(parent, node.text);
      else if (node.type === "code") {
        const code = make("code", "md-code");
        code.append(doc.createTextNode(node.text));
        parent.append(code);
      } else if (node.type === "link") {
        const a = make("a");
        a.href = node.href;
        a.target = "_blank";
        a.rel = "noopener noreferrer nofollow";
        inline(a, node.children);
        parent.append(a);
      } else {
        const tag = make(node.type === "del" ? "del" : node.type === "strong" ? "strong" : "em");
        inline(tag, node.children);
        parent.append(tag);
      }
    }
  };
  const block = (parent, b) => {
    if (b.type === "paragraph") {
      const p = make("p", "md-block md-p");
      inline(p, b.children);
      parent.append(p);
    } else if (b.type === "codeblock") {
      const pre = make("pre", "md-block md-pre");
      const code = make("code");
      if (b.lang) code.dataset.lang = b.lang;
      code.append(doc.createTextNode(b.text));
      pre.append(code);
      parent.append(pre);
    } else if (b.type === "quote") {
      const quote = make("blockquote", "md-block md-quote");
      for (const child of b.children) block(quote, child);
      parent.append(quote);
    } else {
      const list = make(b.ordered ? "ol" : "ul", "md-block md-list");
      if (b.ordered && b.start !== 1) list.setAttribute("start", String(b.start));
      for (const item of b.items) {
        const li = make("li");
        inline(li, item);
        list.append(li);
      }
      parent.append(list);
    }
  };
  for (const b of blocks) block(frag, b);
  return frag;
}
