// An API's version and revisions on its screen: which version of which set it
// is, its revisions, and buttons to create one, make one current (one change)
// or delete a non-current one.

import { call, explain, get } from "../api.js";
import { h, link, say, statusArea, table } from "../dom.js";

const enc = encodeURIComponent;

/** The "Versions and revisions" section of API `api`; `reload` redraws the screen. */
export async function versionsSection(api, reload) {
  const status = statusArea();
  const version = api.apiVersionSetId
    ? h("p", {}, "Version ", h("strong", {}, api.apiVersion || "Original"), " of version set ", h("code", {}, api.apiVersionSetId), ".")
    : h("p", {}, "Not part of a version set.");
  if (api.apiRevisionOf) {
    return h(
      "section",
      { "aria-labelledby": "revisions-title", class: "card" },
      h("h2", { id: "revisions-title" }, "Versions and revisions"),
      version,
      h("p", {}, `Revision ${api.apiRevision} (not current) of `, link(`/admin/apis/${enc(api.apiRevisionOf)}`, api.apiRevisionOf), `: served at /${api.path};rev=${api.apiRevision}.`),
    );
  }
  const act = async (what, method, path) => {
    try {
      say(status, `${what}…`, "info");
      await call(method, path);
      await reload();
    } catch (err) {
      say(status, `${what} failed. ${explain(err)}`);
    }
  };
  const revisions = (await get(`/apis/${enc(api.id)}/revisions`)).value || [];
  const rows = revisions.map((r) => {
    const n = r.apiRevision || 1;
    const current = r.isCurrent !== false;
    return [
      String(n),
      current ? h("strong", {}, "current") : link(`/admin/apis/${enc(r.id)}`, r.id),
      r.apiRevisionDescription || "",
      current
        ? ""
        : h(
            "span",
            {},
            h("button", { type: "button", "data-make-current": n, onclick: () => act(`Making revision ${n} current`, "POST", `/apis/${enc(api.id)}/revisions/${n}/make-current`) }, `Make revision ${n} current`),
            " ",
            h("button", { type: "button", "data-delete-revision": n, onclick: () => act(`Deleting revision ${n}`, "DELETE", `/apis/${enc(api.id)}/revisions/${n}`) }, `Delete revision ${n}`),
          ),
    ];
  });
  return h(
    "section",
    { "aria-labelledby": "revisions-title", class: "card" },
    h("h2", { id: "revisions-title" }, "Versions and revisions"),
    version,
    table(`Revisions of ${api.displayName || api.id}`, ["Revision", "State", "Notes", "Actions"], rows),
    h("div", { class: "actions" }, h("button", { type: "button", class: "create-revision", onclick: () => act("Creating a revision", "POST", `/apis/${enc(api.id)}/revisions`) }, "Create a revision")),
    status,
  );
}
