//! Reloading the config while serving: on SIGHUP, and when the file's content changes.
//!
//! A reload loads and checks the whole file first; only a valid config replaces the one
//! in force, in one atomic swap, so in-flight Checks finish on the config they started
//! with. Providers whose settings did not change keep their keys. The file is polled
//! rather than watched, so the symlink swaps of Kubernetes ConfigMap volumes are seen too;
//! a change is applied once the content has been the same for two polls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::{Config, ConfigError};
use crate::authorizer::Authorizer;

/// How often the file is read for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Swaps in new configs for a running server.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    authorizer: Arc<ArcSwap<Authorizer>>,
    client: reqwest::Client,
    stop: CancellationToken,
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for the config at `path`, swapping `authorizer`.
    pub fn new(
        path: &Path,
        authorizer: Arc<ArcSwap<Authorizer>>,
        client: reqwest::Client,
        stop: CancellationToken,
    ) -> Self {
        Self {
            path: path.to_owned(),
            authorizer,
            client,
            stop,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads, checks and swaps in the file's config.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of an invalid file; the config in force keeps serving.
    pub async fn reload(&self) -> Result<(), ConfigError> {
        let _one_at_a_time = self.lock.lock().await;
        let config = match Config::load(&self.path) {
            Ok(config) => config,
            Err(error) => {
                for problem in error.to_string().lines() {
                    tracing::warn!(
                        problem,
                        "reload rejected; the previous config keeps serving"
                    );
                }
                return Err(error);
            }
        };
        let old = self.authorizer.load_full();
        let old_config = old.config();
        if config.grpc != old_config.grpc || config.admin != old_config.admin {
            tracing::warn!("listener addresses changed; they take effect only after a restart");
        }
        if config.tls != old_config.tls {
            // The files themselves are watched by the listener; which files is fixed at start.
            tracing::warn!("server.tls changed; it takes effect only after a restart");
        }
        let keys = old
            .keys()
            .reload(config.providers.iter().cloned(), &self.client, &self.stop);
        self.authorizer
            .store(Arc::new(Authorizer::new(Arc::new(config), Arc::new(keys))));
        tracing::info!(path = %self.path.display(), "config reloaded");
        Ok(())
    }

    /// Reloads on SIGHUP and when the file changes, until `stop` is cancelled.
    pub async fn watch(self: Arc<Self>) {
        let mut last = tokio::fs::read(&self.path).await.ok();
        let mut pending: Option<Vec<u8>> = None;
        let mut hangup = hangup_signal();
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                _ = recv(&mut hangup) => {
                    tracing::info!("SIGHUP received; reloading");
                    last = tokio::fs::read(&self.path).await.ok();
                    pending = None;
                    let _ = self.reload().await;
                }
                _ = ticks.tick() => {
                    let now = tokio::fs::read(&self.path).await.ok();
                    if now == last {
                        pending = None;
                    } else if now.is_some() && now == pending {
                        // Unchanged for a whole poll: the writer is done.
                        last = now;
                        pending = None;
                        let _ = self.reload().await;
                    } else {
                        pending = now;
                    }
                }
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn recv(hangup: &mut Hangup) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}
