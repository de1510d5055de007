// APIs: the list, a new API (by hand or from an OpenAPI document), and one API
// with its settings, operations, OpenAPI import and policy.

import { ApiError, all, call, explain, get, save } from "../api.js";
import { field, h, link, replace, say, statusArea, table } from "../dom.js";
import { policyEditor } from "../policy_editor.js";
import { navigate } from "../router.js";
import { versionsSection } from "./versions.js";

const enc = encodeURIComponent;

/** The media type to send a pasted or uploaded document with. */
function documentType(text) {
  return text.trimStart().startsWith("{") ? "application/json" : "application/yaml";
}

/**
 * The OpenAPI import form for API `id` (new when `isNew`): paste, file or URL.
 * `done` runs after a successful import.
 */
function importForm(id, isNew, done) {
  const status = statusArea();
  const path = field("Path (URL prefix on the gateway)", { name: "path", placeholder: "pets", required: isNew }, isNew ? "Required for a new API." : "Leave empty to keep the current path.");
  const serviceUrl = field("Backend URL", { name: "serviceUrl", type: "url", placeholder: "https://backend.internal/v1" }, "Optional: else the document's first absolute server URL.");
  const paste = field("OpenAPI document (JSON or YAML)", { tag: "textarea", name: "document", rows: "10", class: "code", spellcheck: "false" });
  const file = field("…or upload a file", { type: "file", name: "file", accept: ".json,.yaml,.yml,application/json,application/yaml" });
  const url = field("…or fetch it from a URL", { type: "url", name: "url", placeholder: "https://example.com/openapi.json" });
  file.input.addEventListener("change", async () => {
    const f = file.input.files[0];
    if (f) paste.input.value = await f.text();
  });
  const apiId = isNew ? field("API id", { name: "id", required: true, pattern: "[A-Za-z0-9._~-]+", placeholder: "pets" }, "Letters, digits, '-', '.', '_' or '~'.") : null;
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const target = isNew ? apiId.input.value.trim() : id;
        if (!target) return say(status, "Give the API an id.");
        const options = {};
        if (path.input.value.trim()) options.path = path.input.value.trim();
        if (serviceUrl.input.value.trim()) options.serviceUrl = serviceUrl.input.value.trim();
        try {
          say(status, "Importing…", "info");
          let result;
          if (url.input.value.trim()) {
            result = await call("POST", `/apis/${enc(target)}/openapi/import-url`, { body: { url: url.input.value.trim(), ...options } });
          } else if (paste.input.value.trim()) {
            const query = new URLSearchParams(options).toString();
            result = await call("PUT", `/apis/${enc(target)}/openapi${query ? `?${query}` : ""}`, {
              body: paste.input.value,
              type: documentType(paste.input.value),
            });
          } else {
            return say(status, "Paste a document, choose a file or give a URL.");
          }
          say(status, `Imported: ${result.data.operations?.length ?? 0} operations.`, "ok");
          done(target);
        } catch (err) {
          say(status, `Not imported. ${explain(err)}`);
        }
      },
    },
    h("h2", {}, isNew ? "Import an API from OpenAPI" : "Import an OpenAPI document"),
    apiId?.row,
    path.row,
    serviceUrl.row,
    paste.row,
    file.row,
    url.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Import")),
    status,
  );
  return form;
}

/** The settings form, for a new API (`api` null) or an existing one. */
function settingsForm(api, done) {
  const status = statusArea();
  const id = api ? null : field("API id", { required: true, pattern: "[A-Za-z0-9._~-]+" });
  const name = field("Display name", { value: api?.displayName || "" });
  const path = field("Path (URL prefix on the gateway)", { required: true, value: api?.path || "" });
  const serviceUrl = field("Backend URL", { type: "url", value: api?.serviceUrl || "" });
  const description = field("Description", { tag: "textarea", rows: "3" });
  description.input.value = api?.description || "";
  const subscription = field("Subscription key required", { type: "checkbox", checked: api ? api.subscriptionRequired !== false : true });
  const websocket = field(
    "WebSocket API",
    { type: "checkbox", checked: api?.type === "websocket" },
    "A ws:// or wss:// backend URL; its one operation, onHandshake, is created with it and its policies run on the handshake.",
  );
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const apply = (body) => {
          body.displayName = name.input.value;
          body.path = path.input.value.trim();
          body.description = description.input.value;
          body.subscriptionRequired = subscription.input.checked;
          body.type = websocket.input.checked ? "websocket" : "http";
          if (serviceUrl.input.value.trim()) body.serviceUrl = serviceUrl.input.value.trim();
          else delete body.serviceUrl;
          return body;
        };
        try {
          const saved = await save("apis", api?.id, id?.input.value.trim(), apply, { operations: [] });
          if (api) say(status, "Saved.", "ok");
          done(saved);
        } catch (err) {
          say(status, `Not saved. ${explain(err)}`);
        }
      },
    },
    h("h2", {}, api ? "Settings" : "Create an API by hand"),
    id?.row,
    name.row,
    path.row,
    serviceUrl.row,
    description.row,
    subscription.row,
    websocket.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, api ? "Save settings" : "Create")),
    status,
  );
}

/** `/admin/apis`. */
export async function apiList(main) {
  const apis = await all("/apis");
  const rows = apis.map((a) => [
    link(`/admin/apis/${enc(a.id)}`, a.displayName || a.id),
    h("code", {}, a.id),
    h("code", {}, `/${a.path}`),
    String(a.operations?.length ?? 0),
  ]);
  replace(
    main,
    h("h1", {}, "APIs"),
    table("Every API", ["Name", "Id", "Path", "Operations"], rows, "No APIs yet: import one below."),
    h("div", { class: "two" }, importForm(null, true, (id) => navigate(`/admin/apis/${enc(id)}`)), settingsForm(null, (id) => navigate(`/admin/apis/${enc(id)}`))),
  );
}

/** `/admin/apis/{id}`. */
export async function apiDetail(main, id) {
  let api;
  try {
    api = await get(`/apis/${enc(id)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      replace(main, h("h1", {}, "No such API"), h("p", {}, `There is no API "${id}". `, link("/admin/apis", "Back to the APIs")));
      return;
    }
    throw err;
  }
  const operations = table(
    `Operations of ${api.displayName || api.id}`,
    ["Method", "URL template", "Id", "Name", "Policy"],
    (api.operations || []).map((o) => [
      h("span", { class: "method" }, o.method),
      h("code", {}, o.urlTemplate),
      h("code", {}, o.id),
      o.displayName || "",
      link(`/admin/apis/${enc(api.id)}/operations/${enc(o.id)}`, o.policy ? "Edit policy" : "Add policy", { "aria-label": `Policy of operation ${o.id}` }),
    ]),
    "No operations yet: import an OpenAPI document.",
  );
  const reload = () => apiDetail(main, id);
  replace(
    main,
    h("p", { class: "crumbs" }, link("/admin/apis", "APIs"), " / ", api.id),
    h("h1", {}, api.displayName || api.id),
    h("p", {}, api.type === "websocket" ? "WebSocket API served at " : "Served at ", h("code", {}, `/${api.path}`), api.serviceUrl ? [" → ", h("code", {}, api.serviceUrl)] : null, " · ", h("a", { href: `/apis/${enc(api.id)}/openapi?format=yaml`, download: `${api.id}.yaml` }, "Export OpenAPI (YAML)")),
    h("section", { "aria-labelledby": "ops-title" }, h("h2", { id: "ops-title" }, "Operations"), operations),
    await versionsSection(api, reload),
    policyEditor(`/apis/${enc(api.id)}/policy`, "API policy"),
    h("div", { class: "two" }, settingsForm(api, reload), importForm(api.id, false, reload)),
  );
}

/** `/admin/apis/{id}/operations/{op}`: one operation's policy. */
export async function operationPolicy(main, id, op) {
  const api = await get(`/apis/${enc(id)}`);
  const operation = (api.operations || []).find((o) => o.id === op);
  if (!operation) {
    replace(main, h("h1", {}, "No such operation"), link(`/admin/apis/${enc(id)}`, `Back to ${id}`));
    return;
  }
  replace(
    main,
    h("p", { class: "crumbs" }, link("/admin/apis", "APIs"), " / ", link(`/admin/apis/${enc(id)}`, id), " / ", op),
    h("h1", {}, operation.displayName || op),
    h("p", {}, h("span", { class: "method" }, operation.method), " ", h("code", {}, `/${api.path}${operation.urlTemplate}`)),
    policyEditor(`/apis/${enc(id)}/operations/${enc(op)}/policy`, "Operation policy"),
  );
}
