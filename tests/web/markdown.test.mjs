import assert from "node:assert/strict";
import { test } from "node:test";

import { parse, plainText, render, safeLink } from "../../src/parley/web/markdown.mjs";

/** Just enough of a DOM to see what `render` builds; setting innerHTML anywhere fails the test. */
class FakeNode {
  constructor(tag, text = null) {
    this.tagName = tag;
    this.text = text;
    this.children = [];
    this.attributes = {};
    this.dataset = {};
    this.className = "";
  }

  append(...nodes) {
    for (const node of nodes) {
      if (node.tagName === "#fragment") this.children.push(...node.children);
      else this.children.push(typeof node === "string" ? new FakeNode("#text", node) : node);
    }
  }

  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }

  set innerHTML(_) {
    throw new Error("innerHTML used");
  }

  get textContent() {
    return this.text ?? this.children.map((c) => c.textContent).join("");
  }

  /** A compact picture of the tree: "p(strong(bold) text)". */
  get shape() {
    if (this.tagName === "#text") return JSON.stringify(this.text);
    return `${this.tagName}(${this.children.map((c) => c.shape).join(" ")})`;
  }
}

const doc = {
  createElement: (tag) => new FakeNode(tag),
  createTextNode: (text) => new FakeNode("#text", text),
  createDocumentFragment: () => new FakeNode("#fragment"),
};

function dom(text, appendText) {
  const root = new FakeNode("div");
  root.append(render(parse(text), doc, appendText));
  return root;
}

const shape = (text) => dom(text).children.map((c) => c.shape).join(" ");

function findAll(node, tag, out = []) {
  if (node.tagName === tag) out.push(node);
  for (const child of node.children) findAll(child, tag, out);
  return out;
}

test("emphasis, strong, strikethrough and code", () => {
  assert.equal(shape("*a* _b_ **c** ~~d~~ `e`"), 'p(em("a") " " em("b") " " strong("c") " " del("d") " " code("e"))');
});

test("nesting: strong in emphasis, emphasis in a link, both at once", () => {
  assert.equal(shape("*a **b** c*"), 'p(em("a " strong("b") " c"))');
  assert.equal(shape("***x***"), 'p(em(strong("x")))');
  assert.equal(shape("[*go* now](https://example.com)"), 'p(a(em("go") " now"))');
  assert.equal(shape("~~**gone**~~"), 'p(del(strong("gone")))');
});

test("unclosed or stray markers stay as they were typed", () => {
  assert.equal(shape("**not closed and *this"), 'p("**not closed and *this")');
  assert.equal(shape("2 * 3 * 4"), 'p("2 * 3 * 4")');
  assert.equal(shape("snake_case_name and __init__x"), 'p("snake_case_name and __init__x")');
  assert.equal(shape("~single~ and `open"), 'p("~single~ and `open")');
  assert.equal(shape("[no link](nowhere"), 'p("[no link](nowhere")');
  assert.equal(shape("```\nnever closed"), 'p("```\\nnever closed")');
  assert.equal(shape("\\*escaped\\*"), 'p("*escaped*")');
});

test("code spans and blocks are not parsed further", () => {
  assert.equal(shape("`**no** [x](https://a.b) @bob`"), 'p(code("**no** [x](https://a.b) @bob"))');
  assert.equal(shape("``a ` b``"), 'p(code("a ` b"))');
  assert.equal(shape("```js\nif (a < b) { *x* }\n```"), 'pre(code("if (a < b) { *x* }"))');
  const code = findAll(dom("```py\nx\n```"), "code")[0];
  assert.equal(code.dataset.lang, "py");
});

test("links: http, https and mailto, opened apart from the page", () => {
  const root = dom("[site](https://example.com/a_(b)) mail [me](mailto:me@example.com) and http://x.org/y.");
  const links = findAll(root, "a");
  assert.deepEqual(
    links.map((a) => [a.href, a.textContent]),
    [
      ["https://example.com/a_(b)", "site"],
      ["mailto:me@example.com", "me"],
      ["http://x.org/y", "http://x.org/y"],
    ],
  );
  for (const a of links) {
    assert.equal(a.target, "_blank");
    assert.match(a.rel, /^noopener noreferrer\b/);
  }
  assert.equal(root.textContent, "site mail me and http://x.org/y.");
});

test("javascript:, data: and relative links are refused: their source shows as text", () => {
  for (const text of [
    "[click](javascript:alert(1))",
    "[click](JavaScript:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](/relative)",
    "[x](vbscript:msgbox)",
  ]) {
    const root = dom(text);
    assert.equal(findAll(root, "a").length, 0, text);
    assert.equal(root.textContent, text);
  }
  assert.equal(safeLink("javascript:alert(1)"), null);
  assert.equal(safeLink(" https://ok.example"), "https://ok.example/");
});

test("HTML in the text is shown as text", () => {
  const text = '<img src=x onerror="alert(1)"> <script>alert(2)</script> &amp;';
  const root = dom(text);
  assert.equal(root.shape, `div(p(${JSON.stringify(text)}))`);
  assert.equal(shape("**<b>x</b>**"), 'p(strong("<b>x</b>"))');
});

test("block quotes, lists, paragraphs", () => {
  assert.equal(shape("> quoted *x*\n> more\nafter"), 'blockquote(p("quoted " em("x") "\\nmore")) p("after")');
  assert.equal(shape("- one\n- **two**"), 'ul(li("one") li(strong("two")))');
  assert.equal(shape("3. c\n4. d"), 'ol(li("c") li("d"))');
  assert.equal(dom("3. c").children[0].attributes.start, "3");
  assert.equal(shape("intro:\n* a\n\nend"), 'p("intro:") ul(li("a")) p("end")');
  assert.equal(shape("> > > > deep"), 'blockquote(blockquote(blockquote(p("> deep"))))');
  assert.equal(shape("-not a list"), 'p("-not a list")');
});

test("mentions go through the page's text function, not inside code", () => {
  const seen = [];
  const appendText = (parent, text) => {
    seen.push(text);
    parent.append(doc.createTextNode(text));
  };
  dom("hi **@bob** and `@amy`", appendText);
  assert.deepEqual(seen, ["hi ", "@bob", " and "]);
});

test("hostile input: 4,000 characters of markers parse and render, unchanged as text", () => {
  const hostile = [
    "*".repeat(4000),
    "*a".repeat(2000),
    "_a ".repeat(1333),
    "**a*".repeat(1000),
    "~~a".repeat(1333),
    "[".repeat(4000),
    "[a](".repeat(1000),
    "`".repeat(4000),
    "`a``".repeat(1000),
    "> ".repeat(2000),
    "```\n".repeat(1000),
    "- ".repeat(2000),
    "https://".repeat(500),
    "(".repeat(2000) + ")".repeat(2000),
  ];
  for (const text of hostile) {
    const root = dom(text);
    assert.ok(root.children.length >= 1, text.slice(0, 8));
    const plain = root.textContent.replace(/\s/g, "");
    assert.ok(plain.length <= text.length, text.slice(0, 8));
  }
  assert.equal(dom("*".repeat(4000)).textContent, "*".repeat(4000));
  assert.equal(findAll(dom("*a".repeat(2000)), "em").length, 1000);
});

test("a bare URL in brackets or a sentence leaves the punctuation out", () => {
  const root = dom("(at https://example.com/x). **https://example.com/y**");
  assert.deepEqual(
    findAll(root, "a").map((a) => a.href),
    ["https://example.com/x", "https://example.com/y"],
  );
  assert.equal(root.textContent, "(at https://example.com/x). https://example.com/y");
});

test("plainText: the words without the markup, on one line", () => {
  assert.equal(
    plainText("**Plan**:\n1. ship [it](https://x.org)\n2. `rest`\n> *quoted*\n```\ncode\n```"),
    "Plan: ship it rest quoted code",
  );
  assert.equal(plainText("**unclosed"), "**unclosed");
});
