// Dashboard: the estate at a glance, and requests, errors and latency per API
// over time from GET /analytics/requests.

import { all, explain, get } from "../api.js";
import { lineChart } from "../chart.js";
import { field, h, link, replace } from "../dom.js";

const RANGES = [
  { label: "Last hour", ms: 3600e3, bucket: 60 },
  { label: "Last 6 hours", ms: 6 * 3600e3, bucket: 300 },
  { label: "Last 24 hours", ms: 24 * 3600e3, bucket: 900 },
  { label: "Last 7 days", ms: 7 * 24 * 3600e3, bucket: 3600 },
];

/**
 * One line per API. The API leaves empty buckets out: counts (`fill`) get
 * zeros there, so a quiet minute shows as zero rather than a line across it.
 */
function series(groups, pick, fill, from, to, bucketMs) {
  return groups.map((g) => {
    const known = new Map(g.buckets.map((b) => [Date.parse(b.start), pick(b)]));
    let points = [...known.entries()];
    if (fill) {
      points = [];
      for (let t = Math.floor(from / bucketMs) * bucketMs; t < to; t += bucketMs) points.push([t, known.get(t) ?? 0]);
    }
    // Requests no API matched (404s) have no API key.
    return { name: g.key ? g.key : "(no API)", points };
  });
}

async function tiles() {
  const [apis, products, subscriptions, gateways] = await Promise.all(
    ["/apis", "/products", "/subscriptions", "/gateways"].map((p) => get(`${p}?top=0`).catch(() => null)),
  );
  const pending = (await all("/subscriptions").catch(() => [])).filter((s) => s.state === "submitted").length;
  const tile = (n, what, href) => h("li", {}, link(href, h("span", { class: "count" }, n === null ? "—" : String(n)), {}), h("span", {}, what));
  return h(
    "ul",
    { class: "tiles" },
    tile(apis?.count ?? null, "APIs", "/admin/apis"),
    tile(products?.count ?? null, "Products", "/admin/products"),
    tile(subscriptions?.count ?? null, "Subscriptions", "/admin/subscriptions"),
    tile(pending, "Pending approval", "/admin/subscriptions?state=submitted"),
    tile(gateways?.count ?? null, "Gateways", "/admin/gateways"),
  );
}

/** Renders the dashboard into `main`. */
export async function dashboard(main) {
  const select = field("Time range", { tag: "select" });
  select.row.classList.add("narrow");
  RANGES.forEach((r, i) => select.input.append(h("option", { value: String(i) }, r.label)));
  const charts = h("div", { class: "charts", "aria-live": "polite" }, h("p", {}, "Loading analytics…"));
  const draw = async () => {
    const range = RANGES[Number(select.input.value)] || RANGES[0];
    const to = Date.now();
    const from = to - range.ms;
    try {
      const data = await get(`/analytics/requests?groupBy=api&bucket=${range.bucket}&from=${Math.floor(from)}&to=${Math.ceil(to)}`);
      const groups = data.groups || [];
      const ms = range.bucket * 1000;
      if (groups.length === 0) {
        replace(charts, h("p", { class: "empty" }, "No requests in this range yet. Traffic through connected gateways shows here within a few seconds of their upload."));
        return;
      }
      replace(
        charts,
        lineChart("Requests per API", series(groups, (b) => b.requests, true, from, to, ms), "requests", [from, to]),
        lineChart("Errors per API", series(groups, (b) => b.errors, true, from, to, ms), "errors", [from, to]),
        lineChart("Latency p50 per API", series(groups, (b) => b.totalMs?.p50 ?? 0, false), "ms", [from, to]),
        lineChart("Latency p95 per API", series(groups, (b) => b.totalMs?.p95 ?? 0, false), "ms", [from, to]),
      );
    } catch (err) {
      replace(charts, h("p", { class: "status error", role: "alert" }, `Cannot load analytics: ${explain(err)}`));
    }
  };
  select.input.addEventListener("change", draw);
  replace(main, h("h1", {}, "Dashboard"), h("p", {}, "Loading…"));
  const summary = await tiles();
  replace(main, h("h1", {}, "Dashboard"), summary, h("h2", {}, "Traffic"), select.row, charts);
  await draw();
}
