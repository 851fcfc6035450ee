/* Two small DOM builders every view module uses: an element with its class and text, and an
 * icon of index.html's sprite. Text goes in through textContent, never as HTML. */

export function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function icon(name, className) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  if (className) svg.setAttribute("class", className);
  const use = document.createElementNS(ns, "use");
  use.setAttribute("href", "#" + name);
  svg.append(use);
  return svg;
}
