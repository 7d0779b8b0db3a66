//! The config file as written: serde types that mirror the YAML one to one.
//!
//! Nothing here is trusted yet; [`super::validate`] turns a [`File`] into a checked
//! [`super::Config`]. Unknown keys are errors, so a typo never silently loses a setting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Listener addresses and request-path limits.
    #[serde(default)]
    pub server: Server,
    /// Token issuers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, Provider>,
    /// Policies by name.
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
    /// Route table used when Envoy names no policy.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// What happens to a request that no policy and no route claims.
    #[serde(default)]
    pub default: Option<String>,
    /// Correlation id settings.
    #[serde(default)]
    pub correlation: Correlation,
    /// Verified-token cache settings.
    #[serde(default)]
    pub token_cache: TokenCache,
}

/// `token_cache:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenCache {
    /// Estimated memory the cache may use, in bytes; 0 turns it off.
    pub max_bytes: u64,
    /// Longest an entry lives, whatever the token's `exp`.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_ttl: Duration::from_secs(300),
        }
    }
}

/// `server:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// gRPC listener for Envoy's Check calls.
    pub grpc: String,
    /// HTTP listener for `/healthz` and `/readyz`.
    pub admin: String,
    /// Tokens longer than this are refused before any decoding.
    pub max_token_bytes: usize,
    /// The longest a Check may wait for a key refetch.
    #[serde(with = "humantime_serde")]
    pub check_budget: Duration,
    /// How long in-flight Checks may take to finish at shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// TLS (and mTLS) on the gRPC listener; plaintext when absent.
    pub tls: Option<Tls>,
}

/// `server.tls:` PEM files, relative to the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The server certificate chain, leaf first.
    pub cert: Option<String>,
    /// The server's private key.
    pub key: Option<String>,
    /// CA certificates for client certificates; when set, clients must present one.
    pub client_ca: Option<String>,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            grpc: "127.0.0.1:9191".into(),
            admin: "127.0.0.1:9090".into(),
            max_token_bytes: 8 * 1024,
            check_budget: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(20),
            tls: None,
        }
    }
}

/// `providers.NAME:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Expected `iss`, compared exactly.
    pub issuer: Option<String>,
    /// OpenID Connect discovery document URL.
    pub discovery: Option<String>,
    /// JWKS URL, when there is no discovery document.
    pub jwks_uri: Option<String>,
    /// JWKS on disk.
    pub jwks_file: Option<String>,
    /// Signature algorithms accepted from this provider.
    pub algorithms: Option<Vec<String>>,
    /// Allowed clock difference for `exp`, `nbf` and `iat`.
    #[serde(default, with = "humantime_serde")]
    pub clock_skew: Option<Duration>,
    /// Key refresh interval when the JWKS response carries no `max-age`.
    #[serde(default, with = "humantime_serde")]
    pub refresh: Option<Duration>,
    /// Lower bound for a `max-age`-driven refresh interval.
    #[serde(default, with = "humantime_serde")]
    pub min_refresh: Option<Duration>,
    /// Upper bound for a `max-age`-driven refresh interval.
    #[serde(default, with = "humantime_serde")]
    pub max_refresh: Option<Duration>,
    /// Minimum time between two refetches caused by unknown `kid`s.
    #[serde(default, with = "humantime_serde")]
    pub refetch_cooldown: Option<Duration>,
    /// How long the last good keys keep serving while refreshes fail.
    #[serde(default, with = "humantime_serde")]
    pub max_stale: Option<Duration>,
    /// Timeout of one discovery or JWKS request.
    #[serde(default, with = "humantime_serde")]
    pub fetch_timeout: Option<Duration>,
    /// Hosts besides the discovery document's own that its `jwks_uri` may name.
    #[serde(default)]
    pub jwks_hosts: Vec<String>,
    /// Other exact spellings of `iss` this provider publishes.
    #[serde(default)]
    pub issuer_aliases: Vec<String>,
}

/// `policies.NAME:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Let every request through without a token.
    #[serde(default)]
    pub anonymous: bool,
    /// Name of the provider whose tokens this policy accepts.
    pub provider: Option<String>,
    /// Accepted audiences; the token's `aud` must hold one of them.
    pub audiences: Option<Vec<String>>,
    /// Required scopes.
    pub scopes: Option<ValueMatch>,
    /// Claims that hold scopes, first present wins.
    pub scope_claims: Option<Vec<String>>,
    /// Other required claims, by dotted path.
    #[serde(default)]
    pub claims: BTreeMap<String, ValueMatch>,
    /// Where the token may be found.
    pub token: Option<Vec<TokenSource>>,
    /// Claim to upstream header name.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    /// Remove the credential header before the request goes upstream.
    #[serde(default)]
    pub strip_token: bool,
    /// `realm` in the `WWW-Authenticate` challenge.
    pub realm: Option<String>,
    /// Status and message override for denials.
    pub on_failure: Option<OnFailure>,
    /// Add `x-tollgate-reason: <code>` to denied answers (for debugging, not production).
    #[serde(default)]
    pub debug_reason_header: bool,
}

/// `{ all: [...] }` or `{ any: [...] }`, with an optional separator for string claims.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    /// Every value must be present.
    pub all: Option<Vec<String>>,
    /// One value is enough.
    pub any: Option<Vec<String>>,
    /// Split a string claim on this separator before matching.
    pub separator: Option<String>,
}

/// One place a token may be found.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    /// Header name.
    pub header: Option<String>,
    /// Auth scheme in that header (`Bearer`); absent means the whole value is the token.
    pub scheme: Option<String>,
    /// Query parameter name.
    pub query: Option<String>,
    /// Cookie name.
    pub cookie: Option<String>,
}

/// `on_failure:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnFailure {
    /// HTTP status for every 401 and 403 this policy answers.
    pub status: Option<u16>,
    /// `error_description` of the JSON body.
    pub message: Option<String>,
}

/// One entry of `routes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// What the request must look like.
    #[serde(rename = "match", default)]
    pub matcher: RouteMatch,
    /// The policy for matching requests.
    pub policy: Option<String>,
    /// `anonymous` lets matching requests through without a token.
    pub allow: Option<String>,
}

/// `match:` of a route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Exact `:authority`, port ignored.
    pub host: Option<String>,
    /// Path prefix, on segment boundaries.
    pub prefix: Option<String>,
    /// Exact path.
    pub exact: Option<String>,
    /// HTTP methods.
    pub methods: Option<Vec<String>>,
}

/// `correlation:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Correlation {
    /// Header carrying the correlation id, in and out.
    pub header: String,
}

impl Default for Correlation {
    fn default() -> Self {
        Self {
            header: "x-correlation-id".into(),
        }
    }
}
