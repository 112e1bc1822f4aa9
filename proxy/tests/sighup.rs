//! Reload on SIGHUP (its own test binary: the signal goes to the whole test process).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use poolgate_proxy::StartOptions;
use support::backend::EchoBackend;
use support::client::get;
use support::harness::{Proxy, sample};

fn yaml(target: &str, prefix: &str) -> String {
    format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{target}\"]\nroutes:\n  - match: {{ path: \"/{prefix}/**\" }}\n    upstream: app\n    public: true\n"
    )
}

#[tokio::test]
async fn sighup_reloads_the_policy() {
    // Our own handler first, so a SIGHUP can never take the default action (terminate).
    let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let be = EchoBackend::start("app");
    let dir = std::env::temp_dir().join(format!("poolgate-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(&path, yaml(&be.target(), "old")).unwrap();
    let cfg =
        poolgate_proxy::convert::proxy_config(Arc::new(poolgate_policies::load(&path).unwrap()));
    let opts = StartOptions {
        reload_from: Some(path.clone()),
        // far longer than the test: only the signal can trigger the reload
        reload_poll: Some(Duration::from_secs(3600)),
        ..StartOptions::default()
    };
    let proxy = Proxy::start_with(cfg, opts);
    assert_eq!(get(proxy.addr, "/new/x", &[]).await.status, 404);
    std::fs::write(&path, yaml(&be.target(), "new")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the reloader is listening by now

    let pid = std::process::id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(
        &proxy.metrics().await,
        r#"poolgate_reloads_total{result="success"}"#,
    ) != Some(1.0)
    {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(proxy.addr, "/new/x", &[]).await.status, 200);
    assert_eq!(get(proxy.addr, "/old/x", &[]).await.status, 404);
    let _ = std::fs::remove_dir_all(&dir);
}
