//! Live reload: on SIGHUP or when a policy file changes, load, validate, build and swap the
//! gate state atomically. A file that does not validate leaves the running state in place,
//! logs every diagnostic and counts a failed reload.
//!
//! Listeners, the admin address and process settings are fixed at start; a reload that changes
//! them applies everything else and logs that a restart is needed for those.
//!
//! The watcher never loads a file while it is being written, and never misses the write that
//! completes it:
//! 1. it records each file's state (time, size, inode, content hash; through symlinks) before
//!    reading;
//! 2. it loads only once that state has held for a settle time;
//! 3. after the reload (which can wait seconds for a new issuer's keys) it compares the files
//!    with what it recorded, and goes round again if they changed meanwhile.
//!
//! An in-place write that pauses longer than the settle time can still be read half-written:
//! a policy is written safely by writing another file and `rename`-ing it over the old one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::convert;
use crate::file_state::Snapshot;
use crate::gate::{GateState, Shared};
use crate::verifier;

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(poolgate_policies::Diagnostics),
    #[error(transparent)]
    Verifier(#[from] verifier::VerifierError),
    #[error(transparent)]
    State(#[from] crate::gate::StateError),
}

/// How long a reload waits for a new verifier's first keys before swapping it in.
const NEW_VERIFIER_READY_WAIT: Duration = Duration::from_secs(5);

/// Loads `path` and swaps it in. Must run on a tokio runtime (a new authorizer is started).
pub async fn reload(shared: &Shared, path: &Path) -> Result<(), ReloadError> {
    let result = try_reload(shared, path).await;
    let label = if result.is_ok() { "success" } else { "failure" };
    shared.metrics.reloads.with_label_values(&[label]).inc();
    match &result {
        Ok(()) => log::warn!("reloaded {}", path.display()),
        Err(e) => log::error!(
            "reload of {} refused, keeping the running configuration:\n{e}",
            path.display()
        ),
    }
    result
}

async fn try_reload(shared: &Shared, path: &Path) -> Result<(), ReloadError> {
    let policy = Arc::new(poolgate_policies::load(path).map_err(ReloadError::Invalid)?);
    if !policy.warnings.is_empty() {
        log::warn!("{}", policy.warnings);
    }
    let old = shared.state.load_full();
    let cfg = convert::proxy_config(policy.clone());
    if cfg
        .listeners
        .iter()
        .map(|l| l.address)
        .ne(old_listeners(&old))
        || policy.admin != old.admin
    {
        log::warn!("listener or admin addresses changed: they take effect on restart only");
    }
    if policy.server.threads != old.policy.server.threads
        || policy.server.access_log != old.policy.server.access_log
    {
        log::warn!("server.threads or server.access_log changed: they take effect on restart only");
    }
    if policy.server.connections.max != old.policy.server.connections.max {
        log::warn!("server.connections.max changed: it takes effect on restart only");
    }
    let setup = verifier::for_policy(&policy, old.verifier.as_ref())?;
    let mut state = GateState::build(&cfg, setup, Some(&old))?;
    state.listeners = old.listeners.clone();
    state.admin = old.admin;
    let new_verifier = state.token_verifier().cloned();
    let old_verifier = old.token_verifier().cloned();
    let replaced = match (&new_verifier, &old_verifier) {
        (Some(n), Some(o)) => !Arc::ptr_eq(n, o),
        (None, None) => false,
        _ => true,
    };
    if replaced && let Some(v) = &new_verifier {
        v.start();
        // Swap once the new verifier has keys, so no request waits on its first fetch; an
        // issuer that cannot be reached does not hold the reload back for long.
        if !v.wait_ready(NEW_VERIFIER_READY_WAIT).await {
            log::warn!(
                "the reloaded configuration's issuers have no keys yet after {NEW_VERIFIER_READY_WAIT:?}: swapping it in anyway"
            );
        }
    }
    shared.state.store(Arc::new(state));
    if replaced && let Some(v) = old_verifier {
        v.stop();
    }
    shared.metrics.config_loaded.set(unix_now());
    Ok(())
}

fn old_listeners(old: &GateState) -> impl Iterator<Item = std::net::SocketAddr> + '_ {
    old.listeners.iter().copied()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How long a changed file must stay unchanged before it is loaded, by default.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(500);

/// Background service: reload on SIGHUP and when a policy file changes.
pub struct Reloader {
    pub shared: Arc<Shared>,
    pub path: PathBuf,
    /// How often the files are compared with what was last loaded.
    pub poll: Duration,
    /// How long a changed file must stay unchanged before it is loaded.
    pub settle: Duration,
}

impl Reloader {
    /// The files the running policy was read from, and the policy path itself.
    fn files(&self) -> Vec<PathBuf> {
        let state = self.shared.state.load();
        let mut f = state.policy.files.clone();
        if !f.contains(&self.path) {
            f.push(self.path.clone());
        }
        f
    }

    /// Waits until the files have not changed for the settle time; returns their state then
    /// (`None` on shutdown).
    async fn settled(&self, shutdown: &mut ShutdownWatch) -> Option<Snapshot> {
        let mut last = Snapshot::of(&self.files());
        loop {
            tokio::select! {
                _ = shutdown.changed() => return None,
                _ = tokio::time::sleep(self.settle) => {}
            }
            let now = last.again();
            if now == last {
                return Some(last);
            }
            last = now;
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = Snapshot::of(&self.files());
        // A change seen after a reload started: go round again without waiting for a poll.
        let mut pending = false;
        loop {
            if !pending {
                let signalled = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                let by_signal = tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = signalled => true,
                    _ = tokio::time::sleep(self.poll) => false,
                };
                if !by_signal && Snapshot::of(&self.files()) == seen {
                    continue;
                }
            }
            let Some(read) = self.settled(&mut shutdown).await else {
                return;
            };
            // Errors are logged and counted inside; the old state keeps serving.
            let _ = reload(&self.shared, &self.path).await;
            pending = read.again() != read;
            if pending {
                log::warn!("a policy file changed while it was being loaded: loading it again");
            }
            // What was read, not what is there now; files a new include names are read now.
            seen = read.extended(&self.files());
        }
    }
}

/// Background service: starts the verifier's key lifecycle on a server runtime and stops it
/// at shutdown. Verifiers swapped in by a reload are started by the reload.
pub struct KeyLifecycle {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for KeyLifecycle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Some(v) = self.shared.state.load().token_verifier() {
            v.start();
        }
        let _ = shutdown.changed().await;
        if let Some(v) = self.shared.state.load().token_verifier() {
            v.stop();
        }
    }
}
