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

    /// Whether every provider has keys to verify with.
    pub fn ready(&self) -> bool {
        self.providers.values().all(|p| p.current().is_some())
    }
}
