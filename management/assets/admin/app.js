// The admin console: routes to each screen; every screen reads and writes
// through the management REST API.

import { route, start } from "./router.js";
import { apiDetail, apiList, operationPolicy } from "./views/apis.js";
import { dashboard } from "./views/dashboard.js";
import { gatewayList } from "./views/gateways.js";
import { namedValueList } from "./views/named_values.js";
import { globalPolicy, productDetail, productList } from "./views/products.js";
import { subscriptionList } from "./views/subscriptions.js";
import { userList } from "./views/users.js";

route("/admin", dashboard);
route("/admin/apis", apiList);
route("/admin/apis/:id", apiDetail);
route("/admin/apis/:id/operations/:op", operationPolicy);
route("/admin/products", productList);
route("/admin/products/:id", productDetail);
route("/admin/policy", globalPolicy);
route("/admin/subscriptions", subscriptionList);
route("/admin/users", userList);
route("/admin/named-values", namedValueList);
route("/admin/gateways", gatewayList);

// The phone-width menu: a disclosure button over the navigation.
const toggle = document.getElementById("nav-toggle");
const nav = document.getElementById("nav");
toggle.addEventListener("click", () => {
  const open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", String(open));
  nav.classList.toggle("open", open);
});
nav.addEventListener("click", (e) => {
  if (e.target.closest("a")) {
    toggle.setAttribute("aria-expanded", "false");
    nav.classList.remove("open");
  }
});

document.body.classList.add("ready");
start(document.getElementById("main"));
