// Gateways: where they run, their instances' status and shared-state stores
// (refreshed every few seconds), and tokens shown once with a copy button.

import { all, call, explain, get } from "../api.js";
import { field, h, replace, say, statusArea, table, when } from "../dom.js";
import { navigate } from "../router.js";

const enc = encodeURIComponent;

/** How often instance status is refreshed. */
const REFRESH_MS = 2000;

function instancesTable(gateway, status) {
  return table(
    `Instances of ${gateway.id}`,
    ["Instance", "Host", "Status", "Health", "Applied revision", "Last heartbeat"],
    (status.instances || []).map((i) => [
      h("code", {}, i.instanceId || "—"),
      i.hostname || "—",
      h("span", { class: `badge ${i.online ? "online" : "offline"}`, "data-instance": i.instanceId }, i.online ? "online" : "offline"),
      i.health || "—",
      String(i.appliedRevision ?? "—"),
      when(i.lastHeartbeat),
    ]),
    "No instance has reported yet.",
  );
}

/** A latency in microseconds for people: `850 µs`, `1.2 ms`. */
function micros(us) {
  if (typeof us !== "number") return "—";
  return us < 1000 ? `${us} µs` : `${(us / 1000).toFixed(us < 10000 ? 1 : 0)} ms`;
}

/** What the gateway entity says about its shared-state store. */
function storeSetting(gateway) {
  const s = gateway.store;
  if (!s || !s.url || s.url === "local") return " · shared state: in process";
  return ` · shared state: ${s.url} (${s.counting || "exact"}, fail ${s.onFailure || "open"})`;
}

/** Each instance's shared-state store as its last heartbeat reported it (a Redis store). */
function storesTable(gateway, status) {
  const rows = (status.instances || [])
    .filter((i) => i.stateStore)
    .map((i) => {
      const s = i.stateStore;
      return [
        h("code", {}, i.instanceId || "—"),
        h("code", {}, s.target || "—"),
        s.counting || "—",
        s.onFailure || "—",
        h("span", { class: `badge ${s.healthy ? "healthy" : "unhealthy"}`, "data-store": i.instanceId }, s.healthy ? "healthy" : "unhealthy"),
        String(s.errors ?? 0),
        s.lastError || "—",
        micros(s.p99Micros),
      ];
    });
  // Nothing when every instance counts in process (they report no store).
  if (rows.length === 0) return null;
  return table(
    `Shared-state stores of ${gateway.id}`,
    ["Instance", "Store", "Counting", "On failure", "Store health", "Errors", "Last error", "p99"],
    rows,
  );
}

function tokenBox(gateway) {
  const out = h("div", { class: "token-out", "aria-live": "polite" });
  const button = h(
    "button",
    {
      type: "button",
      "aria-label": `Create a token for ${gateway.id}`,
      onclick: async () => {
        try {
          const { data } = await call("POST", `/gateways/${enc(gateway.id)}/token`, { body: {} });
          const value = field(`Token for ${gateway.id} (shown once; valid until ${when(data.expiry)})`, { readonly: true, value: data.value, class: "code token" });
          const copied = statusArea();
          const copy = h(
            "button",
            {
              type: "button",
              onclick: async () => {
                value.input.select();
                try {
                  await navigator.clipboard.writeText(data.value);
                  say(copied, "Copied.", "ok");
                } catch {
                  // Clipboard access can be refused (http, permissions): the text is selected for Ctrl+C.
                  say(copied, "Selected: press Ctrl+C (⌘C) to copy.", "info");
                }
              },
            },
            "Copy",
          );
          replace(out, value.row, h("div", { class: "actions" }, copy), copied);
          value.input.focus();
          value.input.select();
        } catch (err) {
          replace(out, h("p", { class: "status error", role: "alert" }, `No token: ${explain(err)}`));
        }
      },
    },
    "Create token",
  );
  return h("div", { class: "token" }, button, out);
}

function createForm(apis, done) {
  const status = statusArea();
  const id = field("Gateway id", { required: true, pattern: "[A-Za-z0-9._~-]+" });
  const location = field("Location", { required: true, placeholder: "Berlin DC" });
  const boxes = apis.map((a) => field(a.displayName || a.id, { type: "checkbox", value: a.id }));
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const body = { location: { name: location.input.value }, apis: boxes.filter((b) => b.input.checked).map((b) => b.input.value) };
          await call("PUT", `/gateways/${enc(id.input.value.trim())}`, { body, headers: { "If-None-Match": "*" } });
          await done();
        } catch (err) {
          say(status, `Not created. ${explain(err)}`);
        }
      },
    },
    h("h2", {}, "Add a gateway"),
    id.row,
    location.row,
    h("fieldset", {}, h("legend", {}, "APIs it serves"), boxes.length ? boxes.map((b) => b.row) : h("p", {}, "No APIs yet.")),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add")),
    status,
  );
}

/** `/admin/gateways`; returns a function that stops the refresh. */
export async function gatewayList(main) {
  let stopped = false;
  let timer = null;
  const [gateways, apis] = await Promise.all([all("/gateways"), all("/apis")]);
  const cards = gateways.map((g) => {
    const instances = h("div", { class: "instances", "aria-live": "polite" }, h("p", {}, "Loading status…"));
    return {
      gateway: g,
      instances,
      el: h(
        "section",
        { class: "card gateway", "aria-labelledby": `gw-${g.id}` },
        h("h2", { id: `gw-${g.id}` }, g.id),
        h("p", {}, g.location?.name || "", g.apis?.length ? ` · serves ${g.apis.join(", ")}` : " · serves no API", storeSetting(g)),
        instances,
        tokenBox(g),
      ),
    };
  });
  const refresh = async () => {
    await Promise.all(
      cards.map(async (c) => {
        try {
          const status = await get(`/gateways/${enc(c.gateway.id)}/status`);
          if (!stopped) replace(c.instances, instancesTable(c.gateway, status), storesTable(c.gateway, status));
        } catch (err) {
          if (!stopped) replace(c.instances, h("p", { class: "status error" }, `Status unavailable: ${explain(err)}`));
        }
      }),
    );
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  };
  replace(
    main,
    h("h1", {}, "Gateways"),
    cards.length ? cards.map((c) => c.el) : h("p", { class: "empty" }, "No gateways yet."),
    createForm(apis, () => navigate("/admin/gateways")),
  );
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
