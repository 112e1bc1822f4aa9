//! The reload watcher through the real proxy: a file written in place is never served
//! half-written, a write that lands while a reload waits is not missed, and a symlink swapped to
//! a file of the same time and size is noticed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use poolgate_authorizer::testutil::{Behaviour, TestIssuer};
use poolgate_proxy::StartOptions;
use support::backend::EchoBackend;
use support::client::get;
use support::harness::Proxy;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "poolgate-watch-{tag}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Only `/v1/**`, public.
fn initial(target: &str) -> String {
    format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{target}\"]\nroutes:\n  \
         - name: v1\n    match: {{ path: \"/v1/**\" }}\n    upstream: app\n    public: true\n"
    )
}

/// Guests may read everything but `/secret/**`; a new issuer whose JWKS never answers, so a
/// reload that brings it waits for its keys. The deny list is the file's last line: the file
/// cut just before it is still a valid policy, one that allows `/secret/x`.
fn guarded(target: &str, jwks: &str) -> (String, String) {
    let head = format!(
        "version: 1\nissuers:\n  slow:\n    issuer: \"http://127.0.0.1:1/slow\"\n    \
         jwks_url: \"{jwks}\"\nupstreams:\n  app:\n    targets: [\"{target}\"]\nroutes:\n  \
         - name: all\n    match: {{ path: \"/**\" }}\n    upstream: app\nrole_mapping:\n  \
         guest: [visitor]\nroles:\n  visitor:\n    \
         allow: [ {{ methods: [GET], paths: [\"/**\"] }} ]\n"
    );
    let tail = "    deny: [ { methods: [\"*\"], paths: [\"/secret/**\"] } ]\n".to_owned();
    (head, tail)
}

fn start(path: &Path) -> Proxy {
    let policy = poolgate_policies::load(path).unwrap();
    let cfg = poolgate_proxy::convert::proxy_config(Arc::new(policy));
    Proxy::start_with(
        cfg,
        StartOptions {
            reload_from: Some(path.to_path_buf()),
            reload_poll: Some(Duration::from_millis(50)),
            reload_settle: Some(Duration::from_millis(500)),
            ..StartOptions::default()
        },
    )
}

/// Requests `/secret/x` until stopped; counts the answers that let it through.
fn watch_secret(proxy: &Proxy, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, usize)> {
    let addr = proxy.addr;
    tokio::spawn(async move {
        let (mut leaked, mut asked) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            asked += 1;
            if get(addr, "/secret/x", &[]).await.status == 200 {
                leaked += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (leaked, asked)
    })
}

/// Stops [`watch_secret`] a moment after the whole file is in force; nothing may have leaked.
async fn end_watch(
    stop: Arc<AtomicBool>,
    watcher: tokio::task::JoinHandle<(usize, usize)>,
    what: &str,
) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (leaked, asked) = watcher.await.unwrap();
    assert!(asked > 50, "too few probes to mean anything: {asked}");
    assert_eq!(
        leaked, 0,
        "the half-written {what} served /secret/x {leaked} times"
    );
}

/// Waits (at most `limit`) until `path` answers `want`.
async fn until_status(proxy: &Proxy, path: &str, want: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if get(proxy.addr, path, &[]).await.status == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `cat > policy.yaml` in two parts: the first is a valid policy that lacks the deny list and
/// brings an issuer whose keys never come. The prefix is never served; the whole file is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_write_in_two_parts_never_serves_the_prefix() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_behaviour(Behaviour::Hang);
    let be = EchoBackend::start("app");
    let dir = temp_dir("inplace");
    let path = dir.join("policy.yaml");
    std::fs::write(&path, initial(&be.target())).unwrap();
    let (head, tail) = guarded(&be.target(), &issuer.jwks_url);
    assert!(poolgate_policies::load_str("prefix.yaml", &head, &|_| None).is_ok());
    let proxy = start(&path);
    assert_eq!(get(proxy.addr, "/secret/x", &[]).await.status, 404);

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_secret(&proxy, stop.clone());
    {
        let mut f = std::fs::File::create(&path).unwrap(); // truncates in place
        f.write_all(head.as_bytes()).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150)); // well within the settle time
        f.write_all(tail.as_bytes()).unwrap();
    }
    // The whole file is in force within a bounded window (settle + the new issuer's 5 s wait).
    let whole = until_status(&proxy, "/secret/x", 401, Duration::from_secs(15)).await;
    assert!(whole, "the complete file never came into force");
    assert_eq!(get(proxy.addr, "/public/x", &[]).await.status, 200);
    end_watch(stop, watcher, "policy").await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A complete file whose new issuer holds the reload for seconds, then, while it waits, a
/// second complete file: the second is loaded once the first reload is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_lands_during_a_reload_is_loaded_after_it() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_behaviour(Behaviour::Hang);
    let be = EchoBackend::start("app");
    let dir = temp_dir("during");
    let path = dir.join("policy.yaml");
    std::fs::write(&path, initial(&be.target())).unwrap();
    let proxy = start(&path);
    let (head, tail) = guarded(&be.target(), &issuer.jwks_url);
    let replace = |text: &str| {
        let tmp = dir.join("policy.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    replace(&head); // allows /secret/x, once its issuer's 5 s wait is over
    // Settled and reading: the reload is now waiting for the slow issuer's keys.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    replace(&format!("{head}{tail}"));
    assert!(
        until_status(&proxy, "/secret/x", 401, Duration::from_secs(15)).await,
        "the second write was missed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The policy path is a symlink; it is swapped to a file with the same modification time and
/// size but other content.
#[tokio::test]
async fn a_symlink_swapped_to_a_same_time_same_size_file_is_reloaded() {
    let be = EchoBackend::start("app");
    let dir = temp_dir("symlink");
    let one = initial(&be.target());
    let two = one.replace("/v1/**", "/v2/**");
    assert_eq!(one.len(), two.len());
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (name, text) in [("one.yaml", &one), ("two.yaml", &two)] {
        std::fs::write(dir.join(name), text).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(name))
            .unwrap();
        f.set_modified(t).unwrap();
    }
    let path = dir.join("policy.yaml");
    std::os::unix::fs::symlink(dir.join("one.yaml"), &path).unwrap();
    let proxy = start(&path);
    assert_eq!(get(proxy.addr, "/v1/x", &[]).await.status, 200);
    let tmp = dir.join("policy.yaml.new");
    std::os::unix::fs::symlink(dir.join("two.yaml"), &tmp).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(
        until_status(&proxy, "/v2/x", 200, Duration::from_secs(10)).await,
        "the swapped symlink was not noticed"
    );
    assert_eq!(get(proxy.addr, "/v1/x", &[]).await.status, 404);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A new main file names an include that is still being written, and brings an issuer that
/// holds the reload: the include's prefix is never served, and its completed version is loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_include_completed_during_a_reload_is_loaded_and_its_prefix_never_served() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_behaviour(Behaviour::Hang);
    let be = EchoBackend::start("app");
    let dir = temp_dir("include");
    let path = dir.join("policy.yaml");
    std::fs::write(&path, initial(&be.target())).unwrap();
    let proxy = start(&path);
    // The include: a route and a role, the role's deny list last.
    let part_head = "routes:\n  - name: all\n    match: { path: \"/**\" }\n    upstream: app\nroles:\n  \
         visitor:\n    allow: [ { methods: [GET], paths: [\"/**\"] } ]\n";
    let part_tail = "    deny: [ { methods: [\"*\"], paths: [\"/secret/**\"] } ]\n";
    let main = format!(
        "version: 1\ninclude: [part.yaml]\nissuers:\n  slow:\n    issuer: \"http://127.0.0.1:1/slow\"\n    \
         jwks_url: \"{}\"\nupstreams:\n  app:\n    targets: [\"{}\"]\nrole_mapping:\n  guest: [visitor]\n",
        issuer.jwks_url,
        be.target()
    );
    let mut part = std::fs::File::create(dir.join("part.yaml")).unwrap();
    part.write_all(part_head.as_bytes()).unwrap();
    part.flush().unwrap();
    let tmp = dir.join("policy.yaml.tmp");
    std::fs::write(&tmp, &main).unwrap();
    std::fs::rename(&tmp, &path).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_secret(&proxy, stop.clone());
    // Settled and loading: the reload now waits for the slow issuer; the include completes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    part.write_all(part_tail.as_bytes()).unwrap();
    drop(part);
    let whole = until_status(&proxy, "/secret/x", 401, Duration::from_secs(25)).await;
    assert!(whole, "the completed include never came into force");
    end_watch(stop, watcher, "include").await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The file is completed between the start-up load and the watcher's start: it is loaded.
#[tokio::test]
async fn a_write_that_completes_during_start_up_is_loaded() {
    let be = EchoBackend::start("app");
    let dir = temp_dir("startup");
    let path = dir.join("policy.yaml");
    let (head, tail) = guarded(&be.target(), "http://127.0.0.1:1/jwks");
    let head = head.replace("issuers:\n  slow:\n    issuer: \"http://127.0.0.1:1/slow\"\n    jwks_url: \"http://127.0.0.1:1/jwks\"\n", "");
    std::fs::write(&path, &head).unwrap();
    let policy = poolgate_policies::load(&path).unwrap();
    // The rest of the file lands after the policy was read, before the watcher runs.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    let cfg = poolgate_proxy::convert::proxy_config(Arc::new(policy));
    let proxy = Proxy::start_with(
        cfg,
        StartOptions {
            reload_from: Some(path.clone()),
            reload_poll: Some(Duration::from_millis(50)),
            reload_settle: Some(Duration::from_millis(200)),
            ..StartOptions::default()
        },
    );
    assert!(
        until_status(&proxy, "/secret/x", 401, Duration::from_secs(10)).await,
        "the file completed at start-up was never loaded"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
