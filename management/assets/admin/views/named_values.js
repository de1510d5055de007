// Named values: list, create, edit. Secret values are never shown: the API
// answers null for them, and an empty value on edit keeps the secret.

import { all, call, explain, update } from "../api.js";
import { field, h, replace, say, statusArea, table } from "../dom.js";

const enc = encodeURIComponent;

function valueForm(existing, done) {
  const status = statusArea();
  const name = existing ? null : field("Name", { required: true, pattern: "[A-Za-z0-9._~-]+" }, "Policies use it as {{name}}.");
  const value = field(
    existing?.secret ? "New value (leave empty to keep the secret)" : "Value",
    { type: existing?.secret ? "password" : "text", value: existing?.secret ? "" : existing?.value || "", autocomplete: "off" },
  );
  const secret = field("Secret (never shown again)", { type: "checkbox", checked: Boolean(existing?.secret) });
  return h(
    "form",
    {
      class: existing ? "inline-form" : "card",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          if (existing) {
            await update(`/named-values/${enc(existing.name)}`, (b) => {
              b.secret = secret.input.checked;
              if (value.input.value !== "" || !existing.secret) b.value = value.input.value;
              else delete b.value;
              return b;
            });
          } else {
            const id = name.input.value.trim();
            await call("PUT", `/named-values/${enc(id)}`, {
              body: { value: value.input.value, secret: secret.input.checked },
              headers: { "If-None-Match": "*" },
            });
          }
          await done();
        } catch (err) {
          say(status, `Not saved. ${explain(err)}`);
        }
      },
    },
    existing ? null : h("h2", {}, "Add a named value"),
    name?.row,
    value.row,
    secret.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, existing ? "Save" : "Add")),
    status,
  );
}

/** `/admin/named-values`. */
export async function namedValueList(main) {
  const draw = async () => {
    const values = await all("/named-values");
    const rows = values.map((v) => [
      h("code", {}, v.name),
      v.secret ? h("span", { class: "badge secret" }, "secret") : h("code", {}, v.value ?? ""),
      h("details", {}, h("summary", {}, `Edit ${v.name}`), valueForm(v, draw)),
    ]);
    replace(
      main,
      h("h1", {}, "Named values"),
      table("Named values", ["Name", "Value", "Edit"], rows, "No named values yet."),
      valueForm(null, draw),
    );
  };
  await draw();
}
