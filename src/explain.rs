//! `tollgate explain`: why tollgate would allow or deny one request with one token.
//!
//! [`explain`] shows which policy the request selects and why, the token's header and
//! claims (decoded without checking the signature, and marked so), the provider and key
//! that would verify it (keys fetched live), and every check in pipeline order with
//! expected and actual values. The per-check table comes from the same pure functions the
//! request path uses ([`crate::verify`], [`crate::policy::requirement`]); the final answer
//! is not recomputed here but asked of a real [`Authorizer`]. The token is only ever
//! decoded and verified locally: nothing but key fetches leaves the process.

mod checks;
mod render;
mod request;

pub use checks::{KeyReport, ProviderReport};

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::UnixTime;
use crate::authorizer::Authorizer;
use crate::config::Config;
use crate::decision::Decision;
use crate::jwks::KeyStore;
use crate::policy::{Access, Policy, ProviderName, RequestLine, SelectError, Selection};
use crate::request::HttpRequestView;

/// The request to explain.
#[derive(Clone, Debug)]
pub struct Input {
    /// The token, as a client would send it (a leading `Bearer ` is ignored).
    pub token: String,
    /// HTTP method.
    pub method: String,
    /// Request target, query included.
    pub path: String,
    /// `:authority`.
    pub host: String,
    /// The policy Envoy names in `context_extensions`, if any.
    pub policy: Option<String>,
}

/// Everything `explain` found, in the order a Check goes.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The request, as explained.
    pub request: RequestLineReport,
    /// Which policy applies and why.
    pub policy: PolicyReport,
    /// The token as decoded, not verified.
    pub token: TokenReport,
    /// The provider that would verify it, when the policy needs a token.
    pub provider: Option<ProviderReport>,
    /// Every check in pipeline order.
    pub checks: Vec<Check>,
    /// What tollgate answers.
    pub answer: Answer,
}

/// The request line explained.
#[derive(Debug, Serialize)]
pub struct RequestLineReport {
    /// HTTP method.
    pub method: String,
    /// `:authority`.
    pub host: String,
    /// Request target.
    pub path: String,
}

/// The policy selection.
#[derive(Debug, Serialize)]
pub struct PolicyReport {
    /// The policy selected; `None` when none is.
    pub name: Option<String>,
    /// `context_extension`, `route`, `default` or `none`.
    pub selected_by: &'static str,
    /// The index of the matching route.
    pub route: Option<usize>,
    /// Why, in words.
    pub reason: String,
    /// Whether the policy lets requests through without a token.
    pub anonymous: bool,
}

/// The token's header and claims, decoded without checking the signature.
#[derive(Debug, Serialize)]
pub struct TokenReport {
    /// Always true: nothing here is verified.
    pub unverified: bool,
    /// The JOSE header, when it decodes.
    pub header: Option<Value>,
    /// The claim set, when it decodes.
    pub claims: Option<Value>,
}

/// One row of the check table.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What is checked (`audience`, `claim tenant`).
    pub name: String,
    /// Its result.
    pub status: Status,
    /// What the config requires.
    pub expected: Option<String>,
    /// What the token (or request) has.
    pub actual: Option<String>,
    /// Why it failed, or how it passed.
    pub detail: Option<String>,
}

/// The result of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Met.
    Pass,
    /// Not met.
    Fail,
    /// Not evaluated, because an earlier step failed.
    Skip,
}

/// The answer of the real pipeline.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The HTTP status the client sees (200 for an allow).
    pub status: u16,
    /// The reason code of a deny.
    pub reason: Option<&'static str>,
    /// The `WWW-Authenticate` challenge of a deny.
    pub challenge: Option<String>,
    /// The JSON body of a deny.
    pub body: Option<Value>,
    /// The detail tollgate logs with a deny.
    pub detail: Option<String>,
    /// Headers an allow sets upstream.
    pub upstream_headers: Vec<(String, String)>,
}

/// Explains one request; `client` fetches the provider's keys.
pub async fn explain(
    config: Arc<Config>,
    input: &Input,
    client: &reqwest::Client,
    now: UnixTime,
) -> Report {
    let token = input.token.trim();
    let token = strip_scheme(token);
    let line = RequestLine {
        method: &input.method,
        host: &input.host,
        path: &input.path,
    };
    let selected = config.policies.select(input.policy.as_deref(), &line);
    let policy = policy_report(&config, input, &selected);
    let (header, claims) = checks::decode(token);

    let mut provider = None;
    let mut rows = Vec::new();
    let mut path = input.path.clone();
    let mut headers = Vec::new();
    if let Ok((selected, _)) = &selected
        && let Access::Token(token_policy) = &selected.access
    {
        (path, headers) = request::place(token_policy, &input.path, token);
        let check = request::build(&input.method, &input.host, &path, &headers);
        let view = HttpRequestView::new(&check);
        let table = checks::run(&config, token_policy, view, claims.as_ref(), client, now).await;
        provider = table.provider;
        rows = table.rows;
    }

    // Keys the table could fetch will load for the answer too; without them the answer
    // (keys_unavailable) is the honest one.
    let wait_for = provider
        .as_ref()
        .filter(|p| p.keys_from.is_some())
        .map(|p| ProviderName::new(&p.name));
    let check = request::build(&input.method, &input.host, &path, &headers);
    let answer = answer(config, &check, input.policy.as_deref(), wait_for, now).await;
    Report {
        request: RequestLineReport {
            method: input.method.clone(),
            host: input.host.clone(),
            path: input.path.clone(),
        },
        policy,
        token: TokenReport {
            unverified: true,
            header,
            claims: claims.map(Value::Object),
        },
        provider,
        checks: rows,
        answer,
    }
}

/// The token without a `Bearer ` prefix pasted along with it.
fn strip_scheme(token: &str) -> &str {
    match token.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => token,
    }
}

fn policy_report(
    config: &Config,
    input: &Input,
    selected: &Result<(&Arc<Policy>, Selection), SelectError>,
) -> PolicyReport {
    let (policy, selection) = match selected {
        Ok(found) => found,
        Err(error) => {
            return PolicyReport {
                name: None,
                selected_by: "none",
                route: None,
                reason: error.to_string(),
                anonymous: false,
            };
        }
    };
    let (selected_by, route, reason) = match selection {
        Selection::ContextExtension => (
            "context_extension",
            None,
            "named by --policy, as Envoy names it in context_extensions".to_owned(),
        ),
        Selection::Route(index) => (
            "route",
            Some(*index),
            format!(
                "routes[{index}] {} is the first route matching {} {}{}",
                request::route_text(&config.path, *index),
                input.method,
                input.host,
                input.path
            ),
        ),
        Selection::Default => (
            "default",
            None,
            "no route matches; default names this policy".to_owned(),
        ),
    };
    PolicyReport {
        name: Some(policy.name.to_string()),
        selected_by,
        route,
        reason,
        anonymous: matches!(policy.access, Access::Anonymous),
    }
}

/// Asks a real authorizer, with keys loaded the way `serve` loads them.
async fn answer(
    config: Arc<Config>,
    check: &envoy_types::pb::envoy::service::auth::v3::CheckRequest,
    named: Option<&str>,
    wait_for: Option<ProviderName>,
    now: UnixTime,
) -> Answer {
    let stop = CancellationToken::new();
    let keys = Arc::new(KeyStore::new(config.providers.iter().cloned()));
    if let Ok(client) = crate::jwks::fetch::client() {
        keys.spawn_refresh(&client, &stop);
    }
    if let Some(provider) = wait_for.as_ref().and_then(|name| keys.get(name)) {
        // Discovery and key set, each within the fetch timeout.
        let budget = provider.provider().fetch_timeout * 2 + Duration::from_secs(1);
        let _ = tokio::time::timeout(budget, async {
            while provider.current().is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    let authorizer = Authorizer::new(config, keys);
    let outcome = authorizer
        .check(HttpRequestView::new(check), named, now)
        .await;
    stop.cancel();
    match outcome.decision {
        Decision::Allow(allow) => Answer {
            decision: "allow",
            status: 200,
            reason: None,
            challenge: None,
            body: None,
            detail: None,
            upstream_headers: allow.set,
        },
        Decision::Deny(deny) => Answer {
            decision: "deny",
            status: deny.status(),
            reason: Some(deny.reason.as_str()),
            challenge: deny.challenge(),
            body: serde_json::from_str(&deny.body(outcome.correlation_id.as_str())).ok(),
            detail: outcome.detail,
            upstream_headers: Vec::new(),
        },
    }
}

/// The claim set as a JSON object, if the token has one.
pub(crate) type Claims = Map<String, Value>;
