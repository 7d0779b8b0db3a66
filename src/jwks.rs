//! Keys of every provider: discovery, fetching, the key cache and its refresh.
//!
//! [`KeyStore`] holds one [`ProviderKeys`] per provider. The request path only reads
//! snapshots ([`ProviderKeys::current`]); the refresh tasks started by
//! [`KeyStore::spawn_refresh`] are the only writers.

pub mod discovery;
pub mod fetch;
pub mod key_set;
pub mod refresh;

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use key_set::{Candidates, KeySet, Kid, VerifyingKey};
pub use refresh::ProviderKeys;

use crate::policy::{Provider, ProviderName};

/// The keys of every configured provider.
#[derive(Debug, Default)]
pub struct KeyStore {
    providers: HashMap<ProviderName, Arc<ProviderKeys>>,
}

impl KeyStore {
    /// An empty store for the given providers; nothing is fetched until
    /// [`KeyStore::spawn_refresh`].
    pub fn new(providers: impl IntoIterator<Item = Arc<Provider>>) -> Self {
        let providers = providers
            .into_iter()
            .map(|p| (p.name.clone(), Arc::new(ProviderKeys::new(p))))
            .collect();
        Self { providers }
    }

    /// The keys of one provider.
    pub fn get(&self, name: &ProviderName) -> Option<&Arc<ProviderKeys>> {
        self.providers.get(name)
    }

    /// Every provider's keys.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ProviderKeys>> {
        self.providers.values()
    }

    /// Starts one refresh task per provider; they stop when `stop` is cancelled.
    pub fn spawn_refresh(&self, client: &reqwest::Client, stop: &CancellationToken) {
        for keys in self.providers.values() {
            tokio::spawn(keys.clone().run(client.clone(), stop.child_token()));
        }
    }

    /// The store for a reloaded config: providers whose settings did not change keep their
    /// keys and refresh task; new or changed ones start fetching; the rest are retired.
    pub fn reload(
        &self,
        providers: impl IntoIterator<Item = Arc<Provider>>,
        client: &reqwest::Client,
        stop: &CancellationToken,
    ) -> Self {
        let mut kept = HashMap::new();
        for provider in providers {
            let same = self
                .providers
                .get(&provider.name)
                .filter(|old| **old.provider() == *provider);
            let keys = match same {
                Some(old) => old.clone(),
                None => {
                    let keys = Arc::new(ProviderKeys::new(provider.clone()));
                    tokio::spawn(keys.clone().run(client.clone(), stop.child_token()));
                    keys
                }
            };
            kept.insert(provider.name.clone(), keys);
        }
        for (name, old) in &self.providers {
            if !kept.get(name).is_some_and(|new| Arc::ptr_eq(new, old)) {
                old.retire();
            }
        }
        Self { providers: kept }
    }

    /// Whether every provider has keys to verify with.
    pub fn ready(&self) -> bool {
        self.providers.values().all(|p| p.current().is_some())
    }
}
