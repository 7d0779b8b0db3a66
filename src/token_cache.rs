//! The verified-token cache: a token whose signature and issuer were checked once is not
//! checked again until it expires or its key leaves the provider's key set.
//!
//! Entries are keyed by the SHA-256 of the provider name and the token text (taken only
//! after strict decoding succeeded, so one token has one key), hold the parsed claims,
//! and live no longer than the token's `exp` plus skew, nor than the configured maximum.
//! Time claims are re-checked on every hit, and policy requirements (audience, scopes,
//! claims) are evaluated per request, so one entry serves every policy. The cache is
//! bounded by an estimate of the memory its entries use.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::sync::Cache;
use serde_json::{Map, Value};

use crate::policy::ProviderName;

/// Cache key: SHA-256 of provider name and token.
pub type TokenDigest = [u8; 32];

/// A token whose signature, issuer and time window were verified.
#[derive(Debug)]
pub struct VerifiedToken {
    /// The parsed claims.
    pub claims: Map<String, Value>,
    /// `kid` of the key that verified it.
    pub kid: Option<String>,
    /// Fingerprint of that key, to drop the entry once the key leaves the set.
    pub key_fingerprint: u64,
    ttl: Duration,
    weight: u32,
}

impl VerifiedToken {
    /// A cache entry for verified claims; `ttl` bounds its life, `payload_len` sizes it.
    pub fn new(
        claims: Map<String, Value>,
        kid: Option<String>,
        key_fingerprint: u64,
        ttl: Duration,
        payload_len: usize,
    ) -> Self {
        // Measured (benches/README.md): a 180-byte payload costs about 1 200 bytes as a
        // parsed map and 380 more in the cache's bookkeeping, so about six times the
        // payload plus a fixed part; an under-estimate would let the cache outgrow max_bytes.
        let weight = u32::try_from(payload_len * 6 + 512).unwrap_or(u32::MAX);
        Self {
            claims,
            kid,
            key_fingerprint,
            ttl,
            weight,
        }
    }
}

/// The cache and its hit and miss counts.
pub struct TokenCache {
    entries: Option<Cache<TokenDigest, Arc<VerifiedToken>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.as_ref().map(|c| c.entry_count()))
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

struct EntryLife;

impl moka::Expiry<TokenDigest, Arc<VerifiedToken>> for EntryLife {
    fn expire_after_create(
        &self,
        _key: &TokenDigest,
        value: &Arc<VerifiedToken>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl TokenCache {
    /// A cache holding entries up to `max_bytes` (estimated); 0 disables caching.
    pub fn new(max_bytes: u64) -> Self {
        let entries = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, v: &Arc<VerifiedToken>| v.weight)
                .expire_after(EntryLife)
                .build()
        });
        Self {
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether caching is on (`max_bytes` above 0).
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The cache key of a token for a provider.
    pub fn digest(provider: &ProviderName, token: &str) -> TokenDigest {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(provider.as_str().as_bytes());
        context.update(&[0]);
        context.update(token.as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(context.finish().as_ref());
        key
    }

    /// A cached verification, counting the hit or miss.
    pub fn get(&self, key: &TokenDigest) -> Option<Arc<VerifiedToken>> {
        let found = self.entries.as_ref()?.get(key);
        let metrics = crate::telemetry::metrics::metrics();
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics.cache_hits.inc();
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            metrics.cache_misses.inc();
        }
        found
    }

    /// Stores a verification.
    pub fn insert(&self, key: TokenDigest, token: Arc<VerifiedToken>) {
        if let Some(entries) = &self.entries {
            entries.insert(key, token);
        }
    }

    /// Forgets an entry (its key left the set).
    pub fn remove(&self, key: &TokenDigest) {
        if let Some(entries) = &self.entries {
            entries.invalidate(key);
        }
    }

    /// Lookups that found an entry.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that found none.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Entries held now (approximate until pending work runs).
    pub fn len(&self) -> u64 {
        self.entries.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
