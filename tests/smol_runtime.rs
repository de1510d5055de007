//! `portcullis gateway --runtime smol`: the real binary serves on the smol
//! adapter, reloads its file and stops cleanly on SIGTERM.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_on_smol_reloads_and_stops_on_sigterm() {
    let backend = Backend::echo().await;
    let mut gw = GatewayProcess::start(
        &config_for(backend.addr),
        &["--runtime", "smol", "--reload-interval-ms", "50"],
    )
    .await;
    assert!(
        gw.log_text().contains("\"runtime\":\"smol\""),
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
    assert!(gw.log_text().contains("stopped"), "{}", gw.log_text());
}
