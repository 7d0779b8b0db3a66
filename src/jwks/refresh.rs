//! One task per provider keeps its keys fresh.
//!
//! The task fetches at start, then on the provider's interval (or the response's
//! `max-age`, within bounds), retries failures with capped exponential backoff and
//! jitter, and fetches early when a Check meets an unknown `kid`. A failed fetch never
//! replaces the last good key set; keys older than `max_stale` stop being served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::policy::Provider;
use crate::telemetry::metrics::{ProviderLabels, metrics};

use super::fetch;
use super::key_set::KeySet;

/// First retry delay after a failed fetch.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The keys of one provider as the request path sees them.
#[derive(Debug, Default)]
pub struct KeySnapshot {
    /// The last good key set, and when it was fetched.
    pub keys: Option<(Arc<KeySet>, Instant)>,
    /// The last fetch error, if the last fetch failed.
    pub last_error: Option<String>,
}

/// A provider's keys and the handle to refresh them early.
#[derive(Debug)]
pub struct ProviderKeys {
    provider: Arc<Provider>,
    snapshot: ArcSwap<KeySnapshot>,
    wake: Notify,
    in_flight: AtomicBool,
    last_refetch: std::sync::Mutex<Option<Instant>>,
    attempts: watch::Sender<u64>,
    retired: CancellationToken,
}

impl ProviderKeys {
    /// Keys for `provider`, empty until the refresh task's first success.
    pub fn new(provider: Arc<Provider>) -> Self {
        Self {
            provider,
            snapshot: ArcSwap::default(),
            wake: Notify::new(),
            in_flight: AtomicBool::new(false),
            last_refetch: std::sync::Mutex::new(None),
            attempts: watch::Sender::new(0),
            retired: CancellationToken::new(),
        }
    }

    /// The provider's settings.
    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    /// The keys to verify with now: `None` before the first success or once the last
    /// good set is older than `max_stale`.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        let snapshot = self.snapshot.load();
        let (keys, fetched) = snapshot.keys.as_ref()?;
        (fetched.elapsed() <= self.provider.max_stale).then(|| keys.clone())
    }

    /// The whole snapshot, for readiness and diagnostics.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        self.snapshot.load_full()
    }

    /// Asks for an early fetch because a token named an unknown `kid`, and waits for it
    /// at most `budget`. All callers share one fetch; a new one starts at most once per
    /// `refetch_cooldown`. Returns whether a fetch completed while waiting.
    pub async fn refetch(&self, budget: Duration) -> bool {
        let mut attempts = self.attempts.subscribe();
        let seen = *attempts.borrow_and_update();
        let target = {
            let mut last = self.last_refetch.lock().unwrap_or_else(|e| e.into_inner());
            let in_flight = self.in_flight.load(Ordering::Acquire);
            let cooling = last.is_some_and(|t| t.elapsed() < self.provider.refetch_cooldown);
            match (cooling, in_flight) {
                // Join the fetch under way; it started after the cool-down began.
                (true, true) => seen + 1,
                (true, false) => {
                    let labels = ProviderLabels {
                        provider: self.provider.name.to_string(),
                    };
                    metrics().refetches_suppressed.get_or_create(&labels).inc();
                    return false;
                }
                // A fetch under way may have started before the key was published: wait
                // for the one after it.
                (false, in_flight) => {
                    *last = Some(Instant::now());
                    self.wake.notify_one();
                    seen + 1 + u64::from(in_flight)
                }
            }
        };
        tokio::time::timeout(budget, attempts.wait_for(|n| *n >= target))
            .await
            .is_ok()
    }

    /// Stops this provider's refresh loop for good (a reload removed or changed it).
    pub fn retire(&self) {
        self.retired.cancel();
    }

    /// Runs the refresh loop until `stop` is cancelled or the provider is retired.
    pub async fn run(self: Arc<Self>, client: reqwest::Client, stop: CancellationToken) {
        let mut backoff = BACKOFF_START;
        let mut jwks_uri: Option<String> = None;
        let mut early = false;
        loop {
            self.in_flight.store(true, Ordering::Release);
            let span = tracing::info_span!("jwks_refresh", provider = %self.provider.name, early);
            let delay = async {
                // Discovery is redone on every periodic refresh; an early refetch reuses
                // the known `jwks_uri`.
                let known = if early { jwks_uri.as_deref() } else { None };
                match fetch::keys(&client, &self.provider, known).await {
                    Ok((fetched, uri)) => {
                        metrics().record_refresh(self.provider.name.as_str(), "success");
                        jwks_uri = uri;
                        backoff = BACKOFF_START;
                        self.store(fetched)
                    }
                    Err(error) => {
                        metrics().record_refresh(self.provider.name.as_str(), "failure");
                        let delay = jitter(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        self.fail(&error, delay);
                        delay
                    }
                }
            }
            .instrument(span)
            .await;
            self.in_flight.store(false, Ordering::Release);
            self.attempts.send_modify(|n| *n += 1);

            tokio::select! {
                () = stop.cancelled() => return,
                () = self.retired.cancelled() => return,
                () = tokio::time::sleep(delay) => early = false,
                () = self.wake.notified() => early = true,
            }
        }
    }

    fn store(&self, fetched: fetch::Fetched) -> Duration {
        let provider = &self.provider;
        for skipped in fetched.keys.skipped() {
            tracing::info!(
                provider = %provider.name,
                kid = ?skipped.kid,
                reason = %skipped.reason,
                "jwk skipped",
            );
        }
        let interval = match fetched.max_age {
            Some(max_age) => max_age.clamp(provider.min_refresh, provider.max_refresh),
            None => provider.refresh,
        };
        let old = self.snapshot.load();
        let changed = old.keys.as_ref().is_none_or(|(keys, _)| {
            let kids = |set: &KeySet| set.keys().iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
            kids(keys) != kids(&fetched.keys)
        });
        if changed || old.last_error.is_some() {
            tracing::info!(
                provider = %provider.name,
                origin = %fetched.origin,
                keys = fetched.keys.keys().len(),
                next_refresh = ?interval,
                "keys loaded",
            );
        }
        self.snapshot.store(Arc::new(KeySnapshot {
            keys: Some((Arc::new(fetched.keys), Instant::now())),
            last_error: None,
        }));
        interval
    }

    fn fail(&self, error: &fetch::FetchError, retry_in: Duration) {
        let old = self.snapshot.load();
        tracing::warn!(
            provider = %self.provider.name,
            error = %error,
            cause = ?std::error::Error::source(error).map(ToString::to_string),
            kept_keys = old.keys.is_some(),
            retry_in = ?retry_in,
            "key refresh failed",
        );
        self.snapshot.store(Arc::new(KeySnapshot {
            keys: old.keys.clone(),
            last_error: Some(error.to_string()),
        }));
    }
}

/// Spreads retries of many instances: a delay between 50 % and 100 % of `base`.
fn jitter(base: Duration) -> Duration {
    base.mul_f64(0.5 + fastrand::f64() * 0.5)
}
