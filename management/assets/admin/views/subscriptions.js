// Subscriptions: the list with a state filter, and approve, reject, suspend.

import { all, call, explain, update } from "../api.js";
import { field, h, replace, say, statusArea, table } from "../dom.js";

const enc = encodeURIComponent;
const STATES = ["submitted", "active", "suspended", "rejected", "cancelled", "expired"];

/** `/admin/subscriptions` (`?state=` preselects the filter). */
export async function subscriptionList(main) {
  const status = statusArea();
  const filter = field("Show", { tag: "select" });
  filter.input.append(h("option", { value: "" }, "All states"));
  for (const s of STATES) filter.input.append(h("option", { value: s }, s === "submitted" ? "Pending approval (submitted)" : s));
  filter.input.value = new URLSearchParams(window.location.search).get("state") || "";
  const list = h("div", {});

  const act = async (label, sub, run) => {
    try {
      await run();
      say(status, `${label}: ${sub.displayName || sub.id}.`, "ok");
      await draw();
    } catch (err) {
      say(status, `${label} failed: ${explain(err)}`);
    }
  };
  const actions = (sub) => {
    const buttons = [];
    const name = sub.displayName || sub.id;
    if (sub.state === "submitted") {
      buttons.push(h("button", { type: "button", class: "primary", "aria-label": `Approve ${name}`, onclick: () => act("Approved", sub, () => call("POST", `/subscriptions/${enc(sub.id)}/activate`)) }, "Approve"));
      buttons.push(h("button", { type: "button", "aria-label": `Reject ${name}`, onclick: () => act("Rejected", sub, () => update(`/subscriptions/${enc(sub.id)}`, (b) => ({ ...b, state: "rejected" }))) }, "Reject"));
    }
    if (sub.state === "active") {
      buttons.push(h("button", { type: "button", "aria-label": `Suspend ${name}`, onclick: () => act("Suspended", sub, () => call("POST", `/subscriptions/${enc(sub.id)}/suspend`)) }, "Suspend"));
    }
    if (sub.state === "suspended") {
      buttons.push(h("button", { type: "button", "aria-label": `Reactivate ${name}`, onclick: () => act("Reactivated", sub, () => call("POST", `/subscriptions/${enc(sub.id)}/activate`)) }, "Reactivate"));
    }
    return h("div", { class: "row-actions" }, buttons);
  };

  const draw = async () => {
    const subs = await all("/subscriptions");
    const shown = subs.filter((s) => !filter.input.value || s.state === filter.input.value);
    replace(
      list,
      table(
        "Subscriptions",
        ["Name", "Scope", "Owner", "State", "Actions"],
        shown.map((s) => [s.displayName || s.id, h("code", {}, s.scope), s.ownerId || "—", h("span", { class: `badge ${s.state}` }, s.state), actions(s)]),
        "No subscriptions in this state.",
      ),
    );
  };
  filter.input.addEventListener("change", () => {
    const url = new URL(window.location.href);
    if (filter.input.value) url.searchParams.set("state", filter.input.value);
    else url.searchParams.delete("state");
    window.history.replaceState(null, "", url);
    draw();
  });
  replace(main, h("h1", {}, "Subscriptions"), filter.row, status, list);
  await draw();
}
