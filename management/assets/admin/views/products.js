// Products: the list, create and edit (APIs, subscription and approval
// settings), and each product's policy.

import { ApiError, all, call, explain, get, save } from "../api.js";
import { field, h, link, replace, say, statusArea, table, uid } from "../dom.js";
import { policyEditor } from "../policy_editor.js";
import { navigate } from "../router.js";

const enc = encodeURIComponent;

function productForm(product, apis, done) {
  const status = statusArea();
  const id = product ? null : field("Product id", { required: true, pattern: "[A-Za-z0-9._~-]+" });
  const name = field("Display name", { value: product?.displayName || "" });
  const description = field("Description", { tag: "textarea", rows: "3" });
  description.input.value = product?.description || "";
  const required = field("Subscription required", { type: "checkbox", checked: product ? product.subscriptionRequired !== false : true });
  const approval = field("Subscriptions need approval", { type: "checkbox", checked: Boolean(product?.approvalRequired) }, "New portal subscriptions wait in Subscriptions until an admin approves them.");
  const legendId = uid("apis");
  const boxes = apis.map((a) => {
    const box = field(a.displayName || a.id, { type: "checkbox", value: a.id, checked: Boolean(product?.apis?.includes(a.id)) });
    return box;
  });
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const apply = (body) => {
          body.displayName = name.input.value;
          body.description = description.input.value;
          body.subscriptionRequired = required.input.checked;
          // Sent only when set or already stored, so the form also works with a
          // management plane whose products have no approval setting.
          if (approval.input.checked || "approvalRequired" in body) body.approvalRequired = approval.input.checked;
          body.apis = boxes.filter((b) => b.input.checked).map((b) => b.input.value);
          return body;
        };
        try {
          const saved = await save("products", product?.id, id?.input.value.trim(), apply, {});
          if (product) say(status, "Saved.", "ok");
          done(saved);
        } catch (err) {
          say(status, `Not saved. ${explain(err)}`);
        }
      },
    },
    h("h2", {}, product ? "Settings" : "Create a product"),
    id?.row,
    name.row,
    description.row,
    required.row,
    approval.row,
    h("fieldset", {}, h("legend", { id: legendId }, "APIs in this product"), boxes.length ? boxes.map((b) => b.row) : h("p", {}, "No APIs yet.")),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, product ? "Save" : "Create")),
    status,
  );
}

/** `/admin/products`. */
export async function productList(main) {
  const [products, apis] = await Promise.all([all("/products"), all("/apis")]);
  const rows = products.map((p) => [
    link(`/admin/products/${enc(p.id)}`, p.displayName || p.id),
    h("code", {}, p.id),
    (p.apis || []).join(", ") || "—",
    p.subscriptionRequired === false ? "Open" : p.approvalRequired ? "Approval" : "Automatic",
  ]);
  replace(
    main,
    h("h1", {}, "Products"),
    table("Every product", ["Name", "Id", "APIs", "Subscriptions"], rows, "No products yet."),
    productForm(null, apis, (id) => navigate(`/admin/products/${enc(id)}`)),
  );
}

/** `/admin/products/{id}`. */
export async function productDetail(main, id) {
  let product;
  try {
    product = await get(`/products/${enc(id)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      replace(main, h("h1", {}, "No such product"), link("/admin/products", "Back to the products"));
      return;
    }
    throw err;
  }
  const apis = await all("/apis");
  replace(
    main,
    h("p", { class: "crumbs" }, link("/admin/products", "Products"), " / ", product.id),
    h("h1", {}, product.displayName || product.id),
    productForm(product, apis, () => productDetail(main, id)),
    policyEditor(`/products/${enc(product.id)}/policy`, "Product policy"),
  );
}

/** `/admin/policy`: the global policy. */
export async function globalPolicy(main) {
  replace(
    main,
    h("h1", {}, "Global policy"),
    h("p", {}, "Applies to every API on every gateway; products, APIs and operations include it with ", h("code", {}, "<base />"), "."),
    policyEditor("/policy", "Global policy"),
  );
}
