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
//! 3. the load must have read exactly those bytes (the policy records a hash of every file it
//!    read, includes too): a file that changed, or an include not yet watched, sends the watcher
//!    round again, now watching it too;
//! 4. just before the swap (which can wait seconds for a new issuer's keys) the files are
//!    compared with what was read once more; if one changed, nothing is swapped and the
//!    watcher goes round again;
//! 5. at start it compares the files with what the running policy was built from, so a write
//!    that completed while poolgate started is loaded too.
//!
//! An in-place write that pauses longer than the settle time can still be read half-written:
//! a policy is written safely by writing another file and `rename`-ing it over the old one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// A file changed between the settled state and the swap (or a new include appeared): the
    /// load is dropped and made again once the files have settled (not a failed reload).
    #[error("a policy file changed while it was being loaded")]
    Changed {
        /// Every file the dropped load read.
        files: Vec<PathBuf>,
    },
}

/// How long a reload waits for a new verifier's first keys before swapping it in.
const NEW_VERIFIER_READY_WAIT: Duration = Duration::from_secs(5);

/// Loads `path` and swaps it in. Must run on a tokio runtime (a new authorizer is started).
pub async fn reload(shared: &Shared, path: &Path) -> Result<(), ReloadError> {
    reload_expecting(shared, path, None).await.map(|_| ())
}

/// [`reload`], swapping only if every file read is as `settled` saw it, and still so just
/// before the swap; returns the files' state then.
async fn reload_expecting(
    shared: &Shared,
    path: &Path,
    settled: Option<&Snapshot>,
) -> Result<Snapshot, ReloadError> {
    let result = try_reload(shared, path, settled).await;
    let label = match &result {
        Ok(_) => Some("success"),
        Err(ReloadError::Changed { .. }) => None,
        Err(_) => Some("failure"),
    };
    if let Some(label) = label {
        shared.metrics.reloads.with_label_values(&[label]).inc();
    }
    match &result {
        Ok(_) => log::warn!("reloaded {}", path.display()),
        Err(ReloadError::Changed { .. }) => log::warn!(
            "{} or an include changed while it was being loaded: loading it again once it settles",
            path.display()
        ),
        Err(e) => log::error!(
            "reload of {} refused, keeping the running configuration:\n{e}",
            path.display()
        ),
    }
    result
}

fn changed(policy: &poolgate_policies::Config) -> ReloadError {
    ReloadError::Changed {
        files: policy.read.iter().map(|(p, _)| p.clone()).collect(),
    }
}

async fn try_reload(
    shared: &Shared,
    path: &Path,
    settled: Option<&Snapshot>,
) -> Result<Snapshot, ReloadError> {
    let policy = Arc::new(poolgate_policies::load(path).map_err(ReloadError::Invalid)?);
    if settled.is_some_and(|s| !s.holds(&policy.read)) {
        return Err(changed(&policy));
    }
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
    // The last look before the swap: what was read must still be what is there.
    let files: Vec<PathBuf> = policy.read.iter().map(|(p, _)| p.clone()).collect();
    let now = Snapshot::of(&files);
    if !now.holds(&policy.read) {
        if replaced && let Some(v) = &new_verifier {
            v.stop();
        }
        return Err(changed(&policy));
    }
    shared.state.store(Arc::new(state));
    if replaced && let Some(v) = old_verifier {
        v.stop();
    }
    shared
        .metrics
        .config_loaded
        .set(i64::try_from(crate::unix_now()).unwrap_or(i64::MAX));
    Ok(now)
}

fn old_listeners(old: &GateState) -> impl Iterator<Item = std::net::SocketAddr> + '_ {
    old.listeners.iter().copied()
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

    /// Waits until the files (and `extra`) have not changed for the settle time; returns their
    /// state then (`None` on shutdown).
    async fn settled(&self, extra: &[PathBuf], shutdown: &mut ShutdownWatch) -> Option<Snapshot> {
        let mut last = Snapshot::of(&self.files()).extended(extra);
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
        // The files may have changed between the start-up load and now.
        let mut pending = !seen.holds(&self.shared.state.load().policy.read);
        // Files a dropped load read that the running policy does not name (a new include).
        let mut extra: Vec<PathBuf> = Vec::new();
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
            let Some(settled) = self.settled(&extra, &mut shutdown).await else {
                return;
            };
            // Errors are logged and counted inside; the old state keeps serving.
            match reload_expecting(&self.shared, &self.path, Some(&settled)).await {
                Ok(loaded) => {
                    (seen, pending) = (loaded, false);
                    extra.clear();
                }
                Err(ReloadError::Changed { files }) => {
                    pending = true;
                    extra = files;
                }
                Err(_) => {
                    // What was read, for the files the running policy watches.
                    (seen, pending) = (settled.restricted(&self.files()), false);
                    extra.clear();
                }
            }
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
