//! The state shared by the [`DevIdp`](crate::DevIdp) handle and the HTTP handlers.
//!
//! It owns the key ring (every key ever made, which of them are published, which one signs),
//! the knobs tests turn (fault, headers, discovery overrides) and the request counters. The
//! HTTP side lives in `server.rs` and `grant.rs`; JWS encoding in `token.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::fault::Fault;
use crate::keys::{Key, KeyAlg};
use crate::options::Client;

/// Everything the handle and the handlers share. Fixed settings are plain fields; what tests
/// change at run time sits behind one mutex.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) issuer: String,
    pub(crate) clients: Vec<Client>,
    pub(crate) token_lifetime: Duration,
    pub(crate) jwks_fetches: AtomicUsize,
    pub(crate) discovery_fetches: AtomicUsize,
    /// Changes never; its sender is dropped when the last handle goes, which ends stalls.
    pub(crate) shutdown: watch::Receiver<()>,
    knobs: Mutex<Knobs>,
}

/// Settings tests change while the server runs.
#[derive(Debug)]
pub(crate) struct Knobs {
    pub(crate) fault: Fault,
    pub(crate) cache_control: Option<String>,
    pub(crate) discovery_issuer: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) ring: KeyRing,
}

/// Every key this IdP has made, in creation order, plus raw extra JWKs.
#[derive(Debug)]
pub(crate) struct KeyRing {
    keys: Vec<Entry>,
    extra: Vec<Value>,
    signing: Arc<Key>,
    made: usize,
}

#[derive(Debug)]
struct Entry {
    key: Arc<Key>,
    published: bool,
}

impl Shared {
    pub(crate) fn new(
        issuer: String,
        clients: Vec<Client>,
        token_lifetime: Duration,
        first_key: KeyAlg,
        shutdown: watch::Receiver<()>,
    ) -> Shared {
        let knobs = Knobs {
            fault: Fault::None,
            cache_control: None,
            discovery_issuer: None,
            jwks_uri: None,
            ring: KeyRing::new(first_key),
        };
        Shared {
            issuer,
            clients,
            token_lifetime,
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            shutdown,
            knobs: Mutex::new(knobs),
        }
    }

    /// Locks the run-time settings. A panic in another thread (say a test asking for an
    /// unknown kid) leaves the data consistent, so poisoning is ignored.
    pub(crate) fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The issuer without a trailing slash, to which endpoint paths are appended.
    pub(crate) fn base_url(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// Makes and publishes a new key; returns its kid. The signing key stays as it was.
    pub(crate) fn add_key(&self, alg: KeyAlg) -> String {
        let kid = self.knobs().ring.reserve_kid();
        // Generated outside the lock: RSA key generation takes a noticeable moment.
        let key = Key::generate(kid.clone(), alg);
        self.knobs().ring.insert(key);
        kid
    }

    /// Makes and publishes a new key and signs with it from now on; returns its kid.
    pub(crate) fn rotate(&self, alg: KeyAlg) -> String {
        let kid = self.add_key(alg);
        self.knobs().ring.set_signing(&kid);
        kid
    }

    /// Counts one request to an endpoint counter.
    pub(crate) fn count(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl KeyRing {
    fn new(first: KeyAlg) -> KeyRing {
        let key = Arc::new(Key::generate("k1".to_owned(), first));
        KeyRing {
            keys: vec![Entry {
                key: Arc::clone(&key),
                published: true,
            }],
            extra: Vec::new(),
            signing: key,
            made: 1,
        }
    }

    /// The kid for the next key: `k1`, `k2`, ... in order, never reused.
    fn reserve_kid(&mut self) -> String {
        self.made += 1;
        format!("k{}", self.made)
    }

    /// Publishes a new key (its kid from `reserve_kid`).
    fn insert(&mut self, key: Key) {
        self.keys.push(Entry {
            key: Arc::new(key),
            published: true,
        });
    }

    /// The private key `kid`, published or not.
    pub(crate) fn find(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys
            .iter()
            .find(|entry| entry.key.kid() == kid)
            .map(|entry| Arc::clone(&entry.key))
    }

    /// The key `mint` signs with.
    pub(crate) fn signing(&self) -> Arc<Key> {
        Arc::clone(&self.signing)
    }

    /// Makes `kid` the signing key; false when there is no such key.
    pub(crate) fn set_signing(&mut self, kid: &str) -> bool {
        let Some(key) = self.find(kid) else {
            return false;
        };
        self.signing = key;
        true
    }

    /// Unpublishes key `kid` and drops extra JWKs with that kid; the private key is kept.
    /// Returns whether anything was unpublished.
    pub(crate) fn retire(&mut self, kid: &str) -> bool {
        let mut found = false;
        for entry in self.keys.iter_mut().filter(|entry| entry.key.kid() == kid) {
            found |= entry.published;
            entry.published = false;
        }
        let before = self.extra.len();
        self.extra
            .retain(|jwk| jwk.get("kid").and_then(Value::as_str) != Some(kid));
        found || self.extra.len() != before
    }

    /// Adds a raw JWK, published after the generated keys.
    pub(crate) fn publish_extra(&mut self, jwk: Value) {
        self.extra.push(jwk);
    }

    /// The JWK Set document (RFC 7517 §5): published keys in creation order, then extras.
    pub(crate) fn jwks(&self) -> Value {
        let generated = self.keys.iter().filter(|entry| entry.published);
        let keys: Vec<Value> = generated
            .map(|entry| entry.key.jwk())
            .chain(self.extra.iter().cloned())
            .collect();
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_key_leaves_the_jwks_but_can_still_sign() {
        let mut ring = KeyRing::new(KeyAlg::EdDsa);
        let second = ring.reserve_kid();
        ring.insert(Key::generate(second.clone(), KeyAlg::EdDsa));

        assert!(ring.retire("k1"));

        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1);
        assert_eq!(ring.jwks()["keys"][0]["kid"], second.as_str());
        assert!(ring.find("k1").is_some());
        assert_eq!(ring.signing().kid(), "k1");
    }

    #[test]
    fn extra_jwks_follow_generated_keys_and_retire_by_kid() {
        let mut ring = KeyRing::new(KeyAlg::EdDsa);
        ring.publish_extra(json!({ "kty": "oct", "kid": "odd" }));

        assert_eq!(ring.jwks()["keys"][1]["kid"], "odd");
        assert!(ring.retire("odd"));
        assert!(!ring.retire("odd"));
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn set_signing_refuses_unknown_kid() {
        let mut ring = KeyRing::new(KeyAlg::EdDsa);

        assert!(!ring.set_signing("nope"));
        assert_eq!(ring.signing().kid(), "k1");
    }
}
