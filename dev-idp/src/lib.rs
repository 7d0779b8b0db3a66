//! `dev-idp`: an **INSECURE** OpenID Connect provider for local demos and tests.
//!
//! Never use it in production: its keys live only in memory, its admin endpoints let anyone
//! who can reach it rotate keys, its demo client has a published secret, and tests make it
//! misbehave on purpose. The binary listens on loopback unless told otherwise.
//!
//! It serves what a relying party such as tollgate needs from a real IdP:
//!
//! - `GET /.well-known/openid-configuration`: the discovery document;
//! - `GET /jwks`: the published public keys (RS256, ES256 and EdDSA);
//! - `POST /token`: the OAuth2 `client_credentials` grant;
//! - `POST /admin/rotate?alg=ES256` and `POST /admin/retire?kid=k1`: key rotation for demos.
//!
//! Tests drive it through [`DevIdp`]: mint tokens with any header and claims, add, rotate
//! and unpublish keys, and make discovery and JWKS fail in the ways of [`Fault`].
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let idp = dev_idp::DevIdp::start().await?;
//! let token = idp.mint(&idp.claims());
//! // Point the relying party at idp.discovery_url() and present `token`.
//! # Ok(()) }
//! ```

mod fault;
mod grant;
mod keys;
mod options;
mod server;
mod state;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use axum::http::HeaderValue;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::fault::Fault;
pub use crate::keys::{KeyAlg, UnknownAlg};
pub use crate::options::{Client, Options};
use crate::server::{DISCOVERY_PATH, JWKS_PATH, TOKEN_PATH};
use crate::state::Shared;

/// A running IdP. Clones share one server, which stops when the last clone is dropped.
///
/// The methods that take a kid panic when no key ever had that kid: that is a bug in the
/// test, not a condition to handle.
#[derive(Debug, Clone)]
pub struct DevIdp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Dropping the last clone drops the sender, which stops the server and ends stalls.
    _stop: Arc<watch::Sender<()>>,
}

impl DevIdp {
    /// Starts on `127.0.0.1` with an OS-chosen port, one RS256 key and the demo client.
    ///
    /// # Errors
    ///
    /// If the listener cannot be bound.
    pub async fn start() -> anyhow::Result<DevIdp> {
        DevIdp::start_with(Options::default()).await
    }

    /// Starts with the given options. The server runs on a task of the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// If the listener cannot be bound.
    pub async fn start_with(options: Options) -> anyhow::Result<DevIdp> {
        let listener = TcpListener::bind(options.bind)
            .await
            .with_context(|| format!("cannot listen on {}", options.bind))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let issuer = options.issuer.unwrap_or_else(|| format!("http://{addr}"));

        let (stop, shutdown) = watch::channel(());
        let shared = Arc::new(Shared::new(
            issuer,
            options.clients,
            options.token_lifetime,
            options.first_key,
            shutdown.clone(),
        ));
        let router = server::router(Arc::clone(&shared));
        let stopped = async move {
            let mut shutdown = shutdown;
            let _ = shutdown.changed().await;
        };
        tokio::spawn(async move {
            // Accept errors are retried inside axum; `serve` only returns at shutdown.
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await;
        });

        Ok(DevIdp {
            shared,
            addr,
            _stop: Arc::new(stop),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer, as in `iss` and the discovery document, e.g. `http://127.0.0.1:41234`.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The URL of the discovery document.
    pub fn discovery_url(&self) -> String {
        format!("{}{DISCOVERY_PATH}", self.shared.base_url())
    }

    /// The URL of the JWK Set.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.shared.base_url())
    }

    /// The URL of the token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.shared.base_url())
    }

    /// Makes and publishes a new key; returns its kid. The signing key does not change.
    pub fn add_key(&self, alg: KeyAlg) -> String {
        self.shared.add_key(alg)
    }

    /// Makes key `kid` the one [`mint`](Self::mint) and the token endpoint sign with, even
    /// if it is no longer published.
    pub fn set_signing_key(&self, kid: &str) {
        let known = self.shared.knobs().ring.set_signing(kid);
        assert!(known, "dev-idp has no key with kid {kid:?}");
    }

    /// Unpublishes key `kid`, and any extra JWK with that kid. The private key is kept, so
    /// tests can still sign with it; if it is the signing key, it stays the signing key.
    pub fn remove_key(&self, kid: &str) {
        let known = {
            let mut knobs = self.shared.knobs();
            let retired = knobs.ring.retire(kid);
            retired || knobs.ring.find(kid).is_some()
        };
        assert!(known, "dev-idp has no key with kid {kid:?}");
    }

    /// Makes and publishes a new key and signs with it from now on; returns its kid. The
    /// old keys stay published.
    pub fn rotate(&self, alg: KeyAlg) -> String {
        self.shared.rotate(alg)
    }

    /// The kid of the signing key.
    pub fn signing_kid(&self) -> String {
        self.shared.knobs().ring.signing().kid().to_owned()
    }

    /// Publishes a raw JWK object after the generated keys, as is: broken, encryption or
    /// unknown-`kty` entries for robustness tests.
    pub fn publish_extra_jwk(&self, jwk: Value) {
        self.shared.knobs().ring.publish_extra(jwk);
    }

    /// The JWK Set as currently published (ignoring any fault).
    pub fn jwks(&self) -> Value {
        self.shared.knobs().ring.jwks()
    }

    /// Signs `claims` with the signing key. The header is
    /// `{"alg": <its alg>, "typ": "JWT", "kid": <its kid>}`.
    pub fn mint(&self, claims: &Value) -> String {
        let key = self.shared.knobs().ring.signing();
        token::encode(&key, &token::header_for(&key), claims)
    }

    /// Signs `claims` under `header`, used verbatim (any `alg`, `kid`, `crit` or `typ`, or
    /// none), with key `kid` and that key's own algorithm whatever the header says.
    pub fn mint_with_header(&self, kid: &str, header: &Value, claims: &Value) -> String {
        token::encode(&self.private_key(kid), header, claims)
    }

    /// The raw signature of `signing_input` by key `kid`: RSASSA-PKCS1-v1_5 with SHA-256,
    /// the 64-byte `r || s` of ES256, or Ed25519.
    pub fn sign(&self, kid: &str, signing_input: &[u8]) -> Vec<u8> {
        self.private_key(kid).sign(signing_input)
    }

    /// A valid claim set to start from: `iss` this issuer, `sub` `user-123`, `aud`
    /// `api://orders`, `scope` `orders.read`, `iat` and `nbf` now, `exp` now plus the token
    /// lifetime, and a random `jti`.
    pub fn claims(&self) -> Value {
        let now = token::now();
        json!({
            "iss": self.shared.issuer,
            "sub": "user-123",
            "aud": "api://orders",
            "scope": "orders.read",
            "iat": now,
            "nbf": now,
            "exp": now + self.shared.token_lifetime.as_secs(),
            "jti": token::random_jti(),
        })
    }

    /// Makes discovery and JWKS misbehave; the token and admin endpoints are unaffected.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.knobs().fault = fault;
    }

    /// Sets or clears the `Cache-Control` header of JWKS answers (none by default).
    ///
    /// # Panics
    ///
    /// If `value` is not a valid header value.
    pub fn set_cache_control(&self, value: Option<String>) {
        if let Some(value) = &value {
            let valid = HeaderValue::from_str(value).is_ok();
            assert!(valid, "invalid Cache-Control value {value:?}");
        }
        self.shared.knobs().cache_control = value;
    }

    /// Overrides the `issuer` of the discovery document (tokens keep the real issuer).
    pub fn set_discovery_issuer(&self, issuer: Option<String>) {
        self.shared.knobs().discovery_issuer = issuer;
    }

    /// Overrides the `jwks_uri` of the discovery document.
    pub fn set_jwks_uri(&self, uri: Option<String>) {
        self.shared.knobs().jwks_uri = uri;
    }

    /// How many JWKS requests arrived, whatever the answer.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::Relaxed)
    }

    /// How many discovery requests arrived, whatever the answer.
    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::Relaxed)
    }

    fn private_key(&self, kid: &str) -> Arc<keys::Key> {
        let key = self.shared.knobs().ring.find(kid);
        key.unwrap_or_else(|| panic!("dev-idp has no key with kid {kid:?}"))
    }
}
