//! End-to-end tests of API versions and revisions in the management API over
//! real sockets: version-set CRUD, an API's version fields, revisions (create,
//! list, make current in one change, delete), references and what a gateway's
//! configuration carries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;
#[allow(dead_code)]
mod client;

use api_common::{api, gateway_setup, revision, start};
use serde_json::json;

#[tokio::test]
async fn version_sets_are_entities_and_apis_name_them() {
    let h = start().await;
    let a = &h.admin;
    let set = json!({"displayName": "Orders", "versioningScheme": "Header", "versionHeaderName": "Api-Version", "defaultVersion": "v1"});
    // The default names no version yet: refused, naming the set.
    let r = a.put_json("/api-version-sets/orders", &set).await;
    let p = r.problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("version set `orders`: defaultVersion `v1` is no version of this set"),
        "{p}"
    );
    let plain = json!({"displayName": "Orders", "versioningScheme": "Header", "versionHeaderName": "Api-Version"});
    assert_eq!(
        a.put_json("/api-version-sets/orders", &plain).await.status,
        201
    );
    let mut v1 = api("orders-v1", "orders");
    v1["apiVersionSetId"] = json!("orders");
    v1["apiVersion"] = json!("v1");
    assert_eq!(a.put_json("/apis/orders-v1", &v1).await.status, 201);
    let mut v2 = api("orders-v2", "orders");
    v2["apiVersionSetId"] = json!("orders");
    v2["apiVersion"] = json!("v2");
    assert_eq!(a.put_json("/apis/orders-v2", &v2).await.status, 201);
    // The same version twice in a set.
    let mut dup = api("orders-v2b", "orders2");
    dup["apiVersionSetId"] = json!("orders");
    dup["apiVersion"] = json!("v2");
    let p = a.put_json("/apis/orders-v2b", &dup).await.problem(400);
    assert!(
        p["detail"].as_str().unwrap().contains(
            "api `orders-v2b`: version `v2` of version set `orders` is already api `orders-v2`"
        ),
        "{p}"
    );
    // An unknown set.
    let mut lost = api("lost", "lost");
    lost["apiVersionSetId"] = json!("nope");
    let p = a.put_json("/apis/lost", &lost).await.problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("apiVersionSetId `nope` refers to no version set"),
        "{p}"
    );
    // Now the default can name v1.
    assert_eq!(
        a.put_json("/api-version-sets/orders", &set).await.status,
        200
    );
    let got = a.get("/api-version-sets/orders").await.json();
    assert_eq!(got["versioningScheme"], "Header");
    assert_eq!(got["defaultVersion"], "v1");
    assert_eq!(a.get("/api-version-sets").await.json()["count"], 1);
    // In use: not deleted.
    let p = a.delete("/api-version-sets/orders").await.problem(409);
    assert!(
        p["detail"].as_str().unwrap().contains("api 'orders-v1'"),
        "{p}"
    );
    // The gateway's configuration carries the set and the version fields.
    let (gateway, _) = gateway_setup(a).await;
    let gw = json!({"description": "edge", "location": {"name": "Lab"}, "apis": ["echo", "orders-v1", "orders-v2"]});
    let r = a.put_json("/gateways/gw1", &gw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let config = gateway.get("/gateways/gw1/configuration").await.json();
    assert_eq!(config["versionSets"][0]["id"], "orders");
    let apis = config["apis"].as_array().unwrap();
    let v2 = apis.iter().find(|x| x["id"] == "orders-v2").unwrap();
    assert_eq!(v2["apiVersion"], "v2");
    assert_eq!(v2["apiVersionSetId"], "orders");
}

#[tokio::test]
async fn revisions_are_created_listed_made_current_in_one_change_and_deleted() {
    let h = start().await;
    let a = &h.admin;
    let mut orders = api("orders", "orders");
    orders["policy"] = json!("<policies><inbound><base /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>");
    assert_eq!(a.put_json("/apis/orders", &orders).await.status, 201);
    let r = a
        .post(
            "/apis/orders/revisions",
            Some(&json!({"apiRevisionDescription": "new pricing"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rev2 = r.json();
    assert_eq!(rev2["id"], "orders~rev2");
    assert_eq!(rev2["apiRevision"], 2);
    assert_eq!(rev2["isCurrent"], false);
    assert_eq!(rev2["apiRevisionOf"], "orders");
    assert_eq!(
        rev2["policy"], orders["policy"],
        "a copy of the current revision"
    );
    // Revisions are APIs: edit the new one (another operation).
    let mut edited = rev2.clone();
    edited["operations"] = json!([{ "id": "get", "method": "GET", "urlTemplate": "/v2/*" }]);
    assert_eq!(a.put_json("/apis/orders~rev2", &edited).await.status, 200);
    // A revision of a revision is refused.
    a.post("/apis/orders~rev2/revisions", None)
        .await
        .problem(400);
    let list = a.get("/apis/orders/revisions").await.json();
    let numbers: Vec<_> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["apiRevision"].as_u64().unwrap_or(1),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        numbers,
        vec![(1, "orders".to_owned()), (2, "orders~rev2".to_owned())]
    );

    // Making revision 2 current: one revision bump.
    let before = revision(a).await;
    let r = a
        .post(
            "/apis/orders/revisions/2/make-current",
            Some(&json!({"notes": "released"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(revision(a).await, before + 1);
    let current = a.get("/apis/orders").await.json();
    assert_eq!(current["apiRevision"], 2);
    assert_eq!(current["operations"][0]["urlTemplate"], "/v2/*");
    assert_eq!(current["apiRevisionDescription"], "released");
    assert!(current.get("apiRevisionOf").is_none());
    let old = a.get("/apis/orders~rev1").await.json();
    assert_eq!(old["isCurrent"], false);
    assert_eq!(old["operations"][0]["urlTemplate"], "/*");
    a.get("/apis/orders~rev2").await.problem(404);
    // A replace that leaves the revision fields out keeps them.
    let mut again = api("orders", "orders");
    again["displayName"] = json!("Orders");
    assert_eq!(a.put_json("/apis/orders", &again).await.status, 200);
    assert_eq!(a.get("/apis/orders").await.json()["apiRevision"], 2);

    // The current revision cannot be deleted through the revision route; another can.
    a.delete("/apis/orders/revisions/2").await.problem(409);
    assert_eq!(a.delete("/apis/orders/revisions/1").await.status, 204);
    assert_eq!(a.get("/apis/orders/revisions").await.json()["count"], 1);
    // Deleting the API takes its revisions with it.
    assert_eq!(a.post("/apis/orders/revisions", None).await.status, 201);
    assert_eq!(a.delete("/apis/orders").await.status, 204);
    a.get("/apis/orders~rev3").await.problem(404);
}

#[tokio::test]
async fn a_gateway_assigned_an_api_serves_its_revisions() {
    let h = start().await;
    let a = &h.admin;
    let (gateway, _) = gateway_setup(a).await;
    assert_eq!(a.post("/apis/echo/revisions", None).await.status, 201);
    let config = gateway.get("/gateways/gw1/configuration").await.json();
    let ids: Vec<_> = config["apis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["echo".to_owned(), "echo~rev2".to_owned()]);
}

const ORDERS_V1: &str = r#"{"openapi": "3.0.3", "info": {"title": "Orders", "version": "1"},
  "servers": [{"url": "https://orders.example.com/api"}],
  "paths": {"/orders": {"get": {"operationId": "list-orders", "responses": {"200": {"description": "ok"}}}}}}"#;

const ORDERS_V2: &str = r#"{"openapi": "3.0.3", "info": {"title": "Orders v2", "version": "2"},
  "servers": [{"url": "https://orders.example.com/api/v2"}],
  "paths": {"/orders": {"get": {"operationId": "list-orders", "responses": {"200": {"description": "ok"}}}},
            "/orders/{id}": {"get": {"operationId": "get-order", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "ok"}}}}}}"#;

async fn import(a: &client::Client, path: &str, doc: &str) -> client::Resp {
    a.send(
        hyper::Method::PUT,
        path,
        &[("content-type", "application/json")],
        Some(doc.as_bytes().to_vec()),
    )
    .await
}

#[tokio::test]
async fn openapi_import_into_a_new_version_and_a_new_revision() {
    let h = start().await;
    let a = &h.admin;
    let set = json!({"versioningScheme": "Query", "versionQueryName": "api-version"});
    assert_eq!(
        a.put_json("/api-version-sets/orders", &set).await.status,
        201
    );
    let r = import(
        a,
        "/apis/orders-v1/openapi?path=orders&apiVersionSetId=orders&apiVersion=v1",
        ORDERS_V1,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // A new version of the set: another API at the same path.
    let r = import(
        a,
        "/apis/orders-v2/openapi?path=orders&apiVersionSetId=orders&apiVersion=v2",
        ORDERS_V2,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v2 = r.json();
    assert_eq!(v2["apiVersionSetId"], "orders");
    assert_eq!(v2["apiVersion"], "v2");
    assert_eq!(v2["operations"].as_array().unwrap().len(), 2);
    // A new revision of v1 from the v2 document: v1 itself is unchanged.
    let before = revision(a).await;
    let r = import(a, "/apis/orders-v1/openapi?newRevision=true", ORDERS_V2).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(revision(a).await, before + 1, "one change");
    let rev = r.json();
    assert_eq!(rev["id"], "orders-v1~rev2");
    assert_eq!(rev["isCurrent"], false);
    assert_eq!(rev["apiVersion"], "v1");
    assert_eq!(rev["operations"].as_array().unwrap().len(), 2);
    let v1 = a.get("/apis/orders-v1").await.json();
    assert_eq!(v1["operations"].as_array().unwrap().len(), 1);
    // Its document is the revision's own.
    let exported = a.get("/apis/orders-v1~rev2/openapi").await.json();
    assert!(
        exported["paths"].get("/orders/{id}").is_some(),
        "{exported}"
    );
}
