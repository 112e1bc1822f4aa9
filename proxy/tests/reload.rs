//! Live reload through the real proxy: applied under continuous load without a failed
//! request; a bad file keeps the running configuration and counts a failed reload.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use poolgate_proxy::StartOptions;
use support::backend::EchoBackend;
use support::client::get;
use support::harness::{Proxy, policy_config, sample};

fn yaml(target: &str, extra_route: bool) -> String {
    let mut y = format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{target}\"]\nroutes:\n  - name: v1\n    match: {{ path: \"/v1/**\" }}\n    upstream: app\n    public: true\n"
    );
    if extra_route {
        y.push_str(
            "  - name: v2\n    match: { path: \"/v2/**\" }\n    upstream: app\n    public: true\n",
        );
    }
    y
}

fn temp_policy(text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "poolgate-reload-{}-{}",
        std::process::id(),
        support::backend::hex(&rand_bytes())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn rand_bytes() -> [u8; 8] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (t as u64).to_le_bytes()
}

/// Rewrites the file so its modification time surely changes.
fn rewrite(path: &PathBuf, text: &str) {
    std::thread::sleep(Duration::from_millis(20));
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn wait_metric(proxy: &Proxy, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if sample(&proxy.metrics().await, series) == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} never reached {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_then_bad_file_keeps_running_config() {
    let be = EchoBackend::start("app");
    let path = temp_policy(&yaml(&be.target(), false));
    let policy = poolgate_policies::load(&path).unwrap();
    let cfg = poolgate_proxy::convert::proxy_config(Arc::new(policy));
    let opts = StartOptions {
        reload_from: Some(path.clone()),
        reload_poll: Some(Duration::from_millis(100)),
        ..StartOptions::default()
    };
    let proxy = Proxy::start_with(cfg, opts);
    assert_eq!(get(proxy.addr, "/v2/x", &[]).await.status, 404);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), proxy.addr);
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if get(addr, "/v1/x", &[]).await.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    rewrite(&path, &yaml(&be.target(), true));
    wait_metric(&proxy, r#"poolgate_reloads_total{result="success"}"#, 1.0).await;
    assert_eq!(
        get(proxy.addr, "/v2/x", &[]).await.status,
        200,
        "new route live after reload"
    );

    rewrite(
        &path,
        "version: 1\nroutes: [ { match: { path: \"/**\" }, upstream: nowhere, bogus: 1 } ]\n",
    );
    wait_metric(&proxy, r#"poolgate_reloads_total{result="failure"}"#, 1.0).await;
    assert_eq!(
        get(proxy.addr, "/v2/x", &[]).await.status,
        200,
        "old config still serving"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed, 0,
        "{failed} requests failed during reloads ({ok} succeeded)"
    );
    assert!(ok > 20, "too little load to mean anything: {ok}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn reload_function_reports_diagnostics_and_keeps_state() {
    let be = EchoBackend::start("app");
    let path =
        temp_policy("version: 1\nroutes: [ { match: { path: \"/**\" }, upstream: missing } ]\n");
    let proxy = Proxy::start(policy_config(&yaml(&be.target(), false)));
    let before = proxy.shared.state.load_full();
    let err = poolgate_proxy::reload::reload(&proxy.shared, &path)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(
        Arc::ptr_eq(&before, &proxy.shared.state.load_full()),
        "state was swapped"
    );
    std::fs::write(&path, yaml(&be.target(), true)).unwrap();
    poolgate_proxy::reload::reload(&proxy.shared, &path)
        .await
        .unwrap();
    assert!(!Arc::ptr_eq(&before, &proxy.shared.state.load_full()));
    assert_eq!(get(proxy.addr, "/v2/y", &[]).await.status, 200);
    // the unchanged upstream pool was taken over, not rebuilt
    let (a, b) = (
        before.upstreams.get("app").unwrap(),
        proxy
            .shared
            .state
            .load()
            .upstreams
            .get("app")
            .unwrap()
            .clone(),
    );
    assert!(Arc::ptr_eq(a, &b));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
