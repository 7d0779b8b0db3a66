//! Every metric tollgate exports, created in one place.
//!
//! Names follow OpenTelemetry conventions (`tollgate.check.decisions`, unit on the
//! instrument); the Prometheus text at `/metrics` spells them `tollgate_check_decisions_total`
//! and so on. Labels come from closed sets: decision, reason code, provider name, outcome.
//! Never a subject, an issuer from a token, a path or error text.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::jwks::KeyStore;

/// `decision` and `reason` of a Check.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The deny reason code, empty for an allow.
    pub reason: &'static str,
}

/// `provider` and `outcome` of a key refresh.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    /// Provider name from the config.
    pub provider: String,
    /// `success` or `failure`.
    pub outcome: &'static str,
}

/// A provider name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// Provider name from the config.
    pub provider: String,
}

/// The instruments.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `tollgate.check.decisions`: Checks by decision and reason.
    pub decisions: Family<DecisionLabels, Counter>,
    /// `tollgate.check.duration`: time to answer a Check, in seconds.
    pub check_duration: Histogram,
    /// `tollgate.jwks.refreshes`: key fetches by provider and outcome.
    pub refreshes: Family<RefreshLabels, Counter>,
    /// `tollgate.jwks.refetches.suppressed`: unknown-`kid` refetches refused by the cool-down.
    pub refetches_suppressed: Family<ProviderLabels, Counter>,
    /// `tollgate.jwks.keys`: usable keys per provider.
    pub keys: Family<ProviderLabels, Gauge>,
    /// `tollgate.jwks.age`: seconds since the provider's keys were last fetched.
    pub key_age: Family<ProviderLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `tollgate.token_cache.hits`.
    pub cache_hits: Counter,
    /// `tollgate.token_cache.misses`.
    pub cache_misses: Counter,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "check_decisions",
            "Check answers by decision and reason",
            decisions.clone(),
        );
        // 50 µs to about 3 s.
        let check_duration = Histogram::new(exponential_buckets(0.00005, 2.0, 17));
        registry.register_with_unit(
            "check_duration",
            "Time to answer a Check",
            Unit::Seconds,
            check_duration.clone(),
        );
        let refreshes = Family::<RefreshLabels, Counter>::default();
        registry.register(
            "jwks_refreshes",
            "Key set fetches by provider and outcome",
            refreshes.clone(),
        );
        let refetches_suppressed = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "jwks_refetches_suppressed",
            "Early refetches for unknown kids refused by the cool-down",
            refetches_suppressed.clone(),
        );
        let keys = Family::<ProviderLabels, Gauge>::default();
        registry.register("jwks_keys", "Usable keys per provider", keys.clone());
        let key_age = Family::default();
        registry.register_with_unit(
            "jwks_age",
            "Time since the provider's keys were last fetched",
            Unit::Seconds,
            key_age.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "token_cache_hits",
            "Checks answered from the verified-token cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "token_cache_misses",
            "Checks that verified a token anew",
            cache_misses.clone(),
        );
        Self {
            registry,
            decisions,
            check_duration,
            refreshes,
            refetches_suppressed,
            keys,
            key_age,
            cache_hits,
            cache_misses,
        }
    }

    /// Counts one Check answer.
    pub fn record_check(&self, decision: &'static str, reason: &'static str, took: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels { decision, reason })
            .inc();
        self.check_duration.observe(took.as_secs_f64());
    }

    /// Counts one key fetch.
    pub fn record_refresh(&self, provider: &str, outcome: &'static str) {
        let labels = RefreshLabels {
            provider: provider.to_owned(),
            outcome,
        };
        self.refreshes.get_or_create(&labels).inc();
    }

    /// The Prometheus text exposition, with key gauges read from `keys` now.
    pub fn render(&self, keys: &KeyStore) -> String {
        for provider in keys.iter() {
            let labels = ProviderLabels {
                provider: provider.provider().name.to_string(),
            };
            let snapshot = provider.snapshot();
            let (count, age) = match &snapshot.keys {
                Some((set, fetched)) => (set.keys().len() as i64, fetched.elapsed().as_secs_f64()),
                None => (0, f64::NAN),
            };
            self.keys.get_or_create(&labels).set(count);
            self.key_age.get_or_create(&labels).set(age);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
