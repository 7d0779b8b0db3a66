//! Providers, policies and routes: what a request must present, as pure data.
//!
//! [`Policies::select`] picks the policy for a request (Envoy's `context_extensions`
//! first, then the route table, then the default). Requirement checks live in
//! [`requirement`], route matching in [`route`]. Nothing here does I/O; the checked
//! values come from [`crate::config`].

pub mod requirement;
pub mod route;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

pub use requirement::{ClaimPath, Match, Requirement};
pub use route::{PathMatch, Route, RouteTable};

use crate::token::TokenSource;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a name from the config file.
            pub fn new(name: &str) -> Self {
                Self(name.into())
            }

            /// The name as written in the config file.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}

name_type!(
    /// The name of a provider in the config file.
    ProviderName
);
name_type!(
    /// The name of a policy in the config file.
    PolicyName
);

/// Where a provider's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// An OpenID Connect discovery document, whose `jwks_uri` names the key set.
    Discovery(String),
    /// A JWKS URL.
    JwksUri(String),
    /// A JWKS file on disk.
    JwksFile(PathBuf),
}

/// A token issuer and how to get and refresh its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// Name in the config file.
    pub name: ProviderName,
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    /// Where the keys come from.
    pub source: KeySource,
    /// Signature algorithms accepted; never `none` or HMAC.
    pub algorithms: Vec<Algorithm>,
    /// Allowed clock difference for time claims.
    pub clock_skew: Duration,
    /// Refresh interval when the response names none.
    pub refresh: Duration,
    /// Bounds for a `Cache-Control: max-age` interval.
    pub min_refresh: Duration,
    /// Upper bound for a `Cache-Control: max-age` interval.
    pub max_refresh: Duration,
    /// Minimum time between refetches for unknown `kid`s.
    pub refetch_cooldown: Duration,
    /// How long the last good keys serve while refreshes fail.
    pub max_stale: Duration,
    /// Timeout of one HTTP fetch.
    pub fetch_timeout: Duration,
    /// Hosts besides the discovery document's own that its `jwks_uri` may name.
    pub jwks_hosts: Vec<String>,
    /// Other exact spellings of `iss` this provider's tokens may carry.
    pub issuer_aliases: Vec<String>,
}

impl Provider {
    /// The accepted issuer that a token's `iss` names: the issuer or one of its aliases,
    /// compared exactly; the issuer itself when `iss` is neither, so the check fails on it.
    pub fn issuer_for<'a>(
        &'a self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> &'a str {
        let iss = claims.get("iss").and_then(serde_json::Value::as_str);
        self.issuer_aliases
            .iter()
            .find(|alias| Some(alias.as_str()) == iss)
            .map_or(&self.issuer, |alias| alias)
    }
}

/// A named policy.
#[derive(Debug)]
pub struct Policy {
    /// Name in the config file.
    pub name: PolicyName,
    /// What a request must present.
    pub access: Access,
}

/// Whether a policy wants a token, and which.
#[derive(Debug)]
pub enum Access {
    /// Every request is allowed; no token is looked at.
    Anonymous,
    /// A valid token meeting the requirements is needed.
    Token(Box<TokenPolicy>),
}

/// The requirements of a policy that needs a token.
#[derive(Debug)]
pub struct TokenPolicy {
    /// The provider whose tokens are accepted.
    pub provider: ProviderName,
    /// One of these must be in `aud`.
    pub audiences: Vec<String>,
    /// Required scopes, if any.
    pub scopes: Option<Match>,
    /// Claims holding scopes; the first one present in a token is used.
    pub scope_claims: Vec<ClaimPath>,
    /// Other claim requirements.
    pub claims: Vec<Requirement>,
    /// Where the token may be found; two credentials in one request are refused.
    pub sources: Vec<TokenSource>,
    /// Claims sent upstream as headers.
    pub forward_claims: Vec<ForwardClaim>,
    /// Remove the credential header upstream.
    pub strip_token: bool,
    /// `realm` of the challenge.
    pub realm: String,
    /// Status override for 401 and 403 answers.
    pub failure_status: Option<u16>,
    /// `error_description` override for the deny body.
    pub failure_message: Option<String>,
    /// Tell the client the deny reason in [`crate::service::DEBUG_REASON_HEADER`].
    pub debug_reason_header: bool,
}

/// A claim sent upstream in a header.
#[derive(Clone, Debug)]
pub struct ForwardClaim {
    /// The claim, by dotted path.
    pub claim: ClaimPath,
    /// The header name, lowercase.
    pub header: String,
}

/// Why a policy was chosen, for logs and `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Envoy named it in `context_extensions`.
    ContextExtension,
    /// A route in the route table matched; the index is the route's position.
    Route(usize),
    /// Nothing else matched and the config names a default.
    Default,
}

/// Why no policy could be chosen.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Envoy named a policy the config does not have.
    #[error("envoy named policy {0:?}, which the config does not define")]
    UnknownPolicy(String),
    /// No route matched and no default is configured.
    #[error("no route matches and no default policy is configured")]
    NoMatch,
}

/// The request attributes that policy selection looks at.
#[derive(Clone, Copy, Debug)]
pub struct RequestLine<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// `:authority`.
    pub host: &'a str,
    /// Request target including any query string.
    pub path: &'a str,
}

/// Every policy, the route table and the default.
#[derive(Debug, Default)]
pub struct Policies {
    by_name: HashMap<PolicyName, Arc<Policy>>,
    routes: RouteTable,
    default: Option<Arc<Policy>>,
}

impl Policies {
    /// Builds the set; `routes` and `default` name policies in `policies`.
    pub fn new(
        policies: Vec<Policy>,
        routes: Vec<(Route, PolicyName)>,
        default: Option<PolicyName>,
    ) -> Self {
        let by_name: HashMap<_, _> = policies
            .into_iter()
            .map(|p| (p.name.clone(), Arc::new(p)))
            .collect();
        let routes = routes
            .into_iter()
            .filter_map(|(route, name)| Some((route, by_name.get(&name)?.clone())))
            .collect();
        let default = default.and_then(|name| by_name.get(&name).cloned());
        Self {
            by_name,
            routes: RouteTable::new(routes),
            default,
        }
    }

    /// Picks the policy for a request.
    ///
    /// # Errors
    ///
    /// [`SelectError::UnknownPolicy`] when Envoy names an undefined policy (a
    /// misconfiguration that must not fall through to the route table), and
    /// [`SelectError::NoMatch`] when nothing claims the request.
    pub fn select(
        &self,
        named: Option<&str>,
        request: &RequestLine<'_>,
    ) -> Result<(&Arc<Policy>, Selection), SelectError> {
        if let Some(name) = named {
            return self
                .by_name
                .get(name)
                .map(|p| (p, Selection::ContextExtension))
                .ok_or_else(|| SelectError::UnknownPolicy(name.to_owned()));
        }
        if let Some((index, policy)) = self.routes.select(request) {
            return Ok((policy, Selection::Route(index)));
        }
        self.default
            .as_ref()
            .map(|p| (p, Selection::Default))
            .ok_or(SelectError::NoMatch)
    }

    /// A policy by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.by_name.get(name)
    }

    /// Every policy, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.by_name.values()
    }
}
