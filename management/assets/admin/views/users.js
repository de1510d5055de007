// Users: the portal's users, blocked and unblocked here.

import { all, explain, update } from "../api.js";
import { h, replace, say, statusArea, table } from "../dom.js";

const enc = encodeURIComponent;

/** `/admin/users`. */
export async function userList(main) {
  const status = statusArea();
  const list = h("div", {});
  const draw = async () => {
    const users = await all("/users");
    const toggle = (u) => {
      const blocked = u.state === "blocked";
      const label = blocked ? "Unblock" : "Block";
      return h(
        "button",
        {
          type: "button",
          "aria-label": `${label} ${u.email}`,
          onclick: async () => {
            try {
              await update(`/users/${enc(u.id)}`, (b) => ({ ...b, state: blocked ? "active" : "blocked" }));
              say(status, `${blocked ? "Unblocked" : "Blocked"} ${u.email}.`, "ok");
              await draw();
            } catch (err) {
              say(status, `${label} failed: ${explain(err)}`);
            }
          },
        },
        label,
      );
    };
    replace(
      list,
      table(
        "Users",
        ["Email", "Name", "State", "Action"],
        users.map((u) => [u.email, [u.firstName, u.lastName].filter(Boolean).join(" ") || "—", h("span", { class: `badge ${u.state || "active"}` }, u.state || "active"), toggle(u)]),
        "No users yet: they sign up in the developer portal.",
      ),
    );
  };
  replace(main, h("h1", {}, "Users"), status, list);
  await draw();
}
