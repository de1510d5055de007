//! `portcullis gateway --runtime tokio|smol`: the real binary serves on the
//! runtime it is told, reloads its file and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[runtimes]
async fn the_binary_serves_reloads_and_stops_on_sigterm(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut gw = GatewayProcess::start(
        rt,
        &config_for(backend.addr),
        &["--reload-interval-ms", "50"],
    )
    .await;
    // The smol adapter says so when it starts listening (the tokio one does not).
    assert_eq!(
        gw.log_text().contains("\"runtime\":\"smol\""),
        rt == Runtime::Smol,
        "{}",
        gw.log_text()
    );
    let mut c = Client::connect(gw.addr).await;
    for path in ["/api/one", "/api/two"] {
        let r = c.roundtrip(get(path)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-path").as_deref(), Some(&path[4..]));
    }

    // A new file is put in force.
    let next = config(
        2,
        vec![api("api", "v2", &format!("http://{}", backend.addr))],
    );
    write_atomically(&gw.config_path, &serde_json::to_vec(&next).unwrap());
    within("revision 2 served", async {
        loop {
            let r = Client::connect(gw.addr).await.roundtrip(get("/v2/x")).await;
            if r.status == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;

    wait_sigterm_handler(gw.pid()).await;
    gw.signal("TERM");
    let status = gw.wait_exit().await;
    assert!(status.success(), "{status:?}; log: {}", gw.log_text());
    gw.wait_log("stopped").await;
}
