// The XML editor for a policy document: a textarea with line numbers that asks
// the management plane's compiler (POST …/policy/validate) as you type, lists
// the errors with their lines, jumps to them, and saves with If-Match.

import { ApiError, call, explain } from "./api.js";
import { h, replace, say, statusArea, uid } from "./dom.js";

const TEMPLATE = `<policies>
  <inbound>
    <base />
  </inbound>
  <backend>
    <base />
  </backend>
  <outbound>
    <base />
  </outbound>
  <on-error>
    <base />
  </on-error>
</policies>
`;

/** Milliseconds of quiet typing before the document is checked. */
const DEBOUNCE_MS = 600;

/**
 * An editor for the document at `path` (e.g. `/apis/echo/policy`); `title`
 * names it for people. Returns the element; it loads itself.
 */
export function policyEditor(path, title) {
  const id = uid("policy");
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const text = h("textarea", {
    id,
    class: "code",
    spellcheck: "false",
    autocomplete: "off",
    autocapitalize: "off",
    wrap: "off",
    rows: "18",
    "aria-describedby": `${id}-errors`,
  });
  const errors = h("ul", { class: "errors", id: `${id}-errors`, "aria-live": "polite" });
  const state = h("p", { class: "validity", "aria-live": "polite" }, "Loading…");
  const saved = statusArea();
  let etag = null;
  let timer = null;
  let checked = 0;
  let errorLines = new Set();

  const lines = () => text.value.split("\n").length;
  const drawGutter = () => {
    const n = lines();
    replace(
      gutter,
      Array.from({ length: n }, (_, i) => h("span", { class: errorLines.has(i + 1) ? "bad" : null }, String(i + 1))),
    );
    gutter.scrollTop = text.scrollTop;
  };

  const jumpTo = (line, column = 1) => {
    const all = text.value.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < all.length; i += 1) offset += all[i].length + 1;
    const lineText = all[line - 1] || "";
    text.focus();
    text.setSelectionRange(offset + Math.min(column - 1, lineText.length), offset + lineText.length);
    // Scroll the line into view: the textarea has a fixed line height.
    const lineHeight = parseFloat(getComputedStyle(text).lineHeight) || 20;
    text.scrollTop = Math.max(0, (line - 3) * lineHeight);
    drawGutter();
  };

  const showErrors = (list) => {
    errorLines = new Set(list.filter((e) => e.line).map((e) => e.line));
    replace(
      errors,
      list.map((e) => {
        const where = e.line ? `Line ${e.line}, column ${e.column}` : "Document";
        const what = e.element ? `<${e.element}>: ${e.message}` : e.message;
        return h(
          "li",
          {},
          e.line
            ? h("button", { type: "button", class: "link", onclick: () => jumpTo(e.line, e.column) }, `${where}: ${what}`)
            : `${where}: ${what}`,
        );
      }),
    );
    drawGutter();
  };

  const check = async () => {
    const mine = ++checked;
    state.className = "validity";
    state.textContent = "Checking…";
    try {
      const { data } = await call("POST", `${path}/validate`, { body: text.value, type: "application/xml" });
      if (mine !== checked) return;
      if (data.valid) {
        state.className = "validity ok";
        state.textContent = "Compiles.";
        showErrors([]);
      } else {
        state.className = "validity bad";
        state.textContent = `Does not compile (${data.errors.length} error${data.errors.length === 1 ? "" : "s"}).`;
        showErrors(data.errors);
      }
    } catch (err) {
      if (mine !== checked) return;
      state.className = "validity bad";
      state.textContent = `Cannot check: ${explain(err)}`;
    }
  };

  const save = async () => {
    const headers = etag ? { "If-Match": etag } : { "If-None-Match": "*" };
    try {
      const r = await call("PUT", path, { body: text.value, type: "application/xml", headers });
      etag = r.etag;
      say(saved, `Saved (version ${String(etag).replaceAll('"', "")}).`, "ok");
      showErrors([]);
      state.className = "validity ok";
      state.textContent = "Compiles.";
    } catch (err) {
      if (err instanceof ApiError && err.problem.policy) {
        const p = err.problem.policy;
        showErrors([{ line: p.line, column: p.column, element: p.element, message: p.reason }]);
        say(saved, `Not saved. Line ${p.line}, column ${p.column}: <${p.element}>: ${p.reason}`);
      } else if (err instanceof ApiError && err.status === 412) {
        say(saved, "Not saved: the document was changed elsewhere. Reload it to see the current version.");
      } else {
        say(saved, `Not saved: ${explain(err)}`);
      }
    }
  };

  const load = async () => {
    try {
      const r = await call("GET", path, { headers: { Accept: "application/xml" } });
      etag = r.etag;
      text.value = r.data;
      state.textContent = "Loaded.";
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && err.problem.detail?.startsWith("policy of")) {
        etag = null;
        text.value = TEMPLATE;
        state.textContent = "No document yet: this is a starting point.";
      } else {
        state.textContent = `Cannot load: ${explain(err)}`;
        return;
      }
    }
    drawGutter();
  };

  text.addEventListener("input", () => {
    drawGutter();
    clearTimeout(timer);
    timer = setTimeout(check, DEBOUNCE_MS);
  });
  text.addEventListener("scroll", () => {
    gutter.scrollTop = text.scrollTop;
  });
  text.addEventListener("keydown", (e) => {
    // Tab indents inside the editor; Escape then Tab leaves it (keyboard users).
    if (e.key === "Tab" && !e.shiftKey && !text.dataset.escaped) {
      e.preventDefault();
      text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end");
      text.dispatchEvent(new Event("input"));
    } else if (e.key === "Escape") {
      text.dataset.escaped = "1";
    } else {
      delete text.dataset.escaped;
    }
  });

  load();
  return h(
    "section",
    { class: "policy-editor", "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title),
    h("label", { for: id }, "Policy XML"),
    h("p", { class: "hint" }, "Checked by the gateway's compiler as you type. Tab indents; press Escape, then Tab, to leave the editor."),
    h("div", { class: "editor" }, gutter, text),
    state,
    errors,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: check }, "Check"),
      h("button", { type: "button", class: "primary", onclick: save }, "Save"),
    ),
    saved,
  );
}
