// Small DOM helpers: every view builds its elements with `h`, never with HTML
// strings, so data from the API is always text, never markup.

/** Creates an element: `h("a", { href: "/x", class: "y" }, "text", child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (strings, nodes, arrays of them; null skipped). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let nextId = 0;

/** A fresh id for label/input pairs. */
export function uid(prefix = "f") {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** A labelled input: returns `{ row, input }`. */
export function field(label, attrs = {}, hint = null) {
  const id = attrs.id || uid();
  const tag = attrs.tag || "input";
  const input = h(tag, { ...attrs, tag: null, id });
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  const row = h(
    "div",
    { class: attrs.type === "checkbox" ? "field check" : "field" },
    attrs.type === "checkbox" ? [input, h("label", { for: id }, label)] : [h("label", { for: id }, label), input],
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
  );
  return { row, input };
}

/** A message area that screen readers announce. */
export function statusArea(extraClass = "") {
  return h("div", { class: `status ${extraClass}`.trim(), role: "status", "aria-live": "polite" });
}

/** Shows `message` in an area as an error or a success. */
export function say(area, message, kind = "error") {
  area.className = `status ${kind}`;
  area.setAttribute("role", kind === "error" ? "alert" : "status");
  replace(area, message);
}

/** A table with a caption, header row and rows of cells (strings or nodes). */
export function table(caption, headers, rows, emptyText = "Nothing yet.") {
  if (rows.length === 0) return h("p", { class: "empty" }, emptyText);
  return h(
    "div",
    // Focusable, so keyboard users can scroll a wide table at phone width.
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
    ),
  );
}

/** A link handled by the client-side router. */
export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

/** Formats an RFC 3339 time for people (local time). */
export function when(text) {
  if (!text) return "—";
  const t = new Date(text);
  return Number.isNaN(t.getTime()) ? text : t.toLocaleString();
}
