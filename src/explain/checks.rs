//! The check table of `explain`: each step of the pipeline run on its own, with what the
//! config expects and what the token has.
//!
//! Steps use the request path's own functions. A step that needs an earlier one (the
//! signature needs a key) is skipped when that one failed; claim checks run on the
//! decoded payload whatever the signature says, since that is what a user needs to see.

use std::error::Error;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Check, Claims, Status};
use crate::UnixTime;
use crate::config::Config;
use crate::jwks::fetch;
use crate::policy::{Provider, TokenPolicy};
use crate::request::HttpRequestView;
use crate::token;
use crate::verify::{self, ClaimError, Jws};

mod claims;
mod signature;

/// The provider that would verify the token, and its keys as fetched now.
#[derive(Debug, Serialize)]
pub struct ProviderReport {
    /// Name in the config.
    pub name: String,
    /// The issuer it expects.
    pub issuer: String,
    /// Algorithms it accepts.
    pub algorithms: Vec<String>,
    /// Allowed clock skew, seconds.
    pub clock_skew_s: u64,
    /// Where the keys came from (JWKS URL or file), when the fetch worked.
    pub keys_from: Option<String>,
    /// The usable keys.
    pub keys: Vec<KeyReport>,
    /// Why the keys could not be fetched.
    pub fetch_error: Option<String>,
}

/// One usable key of the provider.
#[derive(Debug, Serialize)]
pub struct KeyReport {
    /// Its `kid`.
    pub kid: Option<String>,
    /// Its type (`RSA 2048 bits`).
    pub kind: String,
    /// The algorithm it is pinned to.
    pub alg: Option<String>,
    /// Whether the token would be verified with it.
    pub selected: bool,
}

/// The table and the provider it was built against.
pub(super) struct Table {
    pub(super) provider: Option<ProviderReport>,
    pub(super) rows: Vec<Check>,
}

impl Check {
    fn new(name: &str, status: Status) -> Self {
        Self {
            name: name.to_owned(),
            status,
            expected: None,
            actual: None,
            detail: None,
        }
    }

    fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    fn actual(mut self, actual: impl Into<String>) -> Self {
        self.actual = Some(actual.into());
        self
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

fn status(ok: bool) -> Status {
    if ok { Status::Pass } else { Status::Fail }
}

/// The header and claims of a token, decoded without any check. Lenient on purpose:
/// showing a malformed token is the point.
pub(super) fn decode(token: &str) -> (Option<Value>, Option<Claims>) {
    let mut parts = token.split('.');
    let mut json = || {
        let segment = parts.next()?.trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
        serde_json::from_slice::<Value>(&bytes).ok()
    };
    let header = json();
    let claims = json().and_then(|v| match v {
        Value::Object(map) => Some(map),
        _ => None,
    });
    (header, claims)
}

/// Runs every check for a token policy.
pub(super) async fn run(
    config: &Config,
    policy: &TokenPolicy,
    request: HttpRequestView<'_>,
    claims: Option<&Claims>,
    client: &reqwest::Client,
    now: UnixTime,
) -> Table {
    let mut rows = Vec::new();
    let Some(provider) = config.providers.iter().find(|p| p.name == policy.provider) else {
        let row = Check::new("provider", Status::Fail).detail("not configured");
        return Table {
            provider: None,
            rows: vec![row],
        };
    };

    let sources: Vec<String> = policy.sources.iter().map(ToString::to_string).collect();
    let found = token::extract(&policy.sources, request, config.max_token_bytes);
    let row = Check::new("token", status(found.is_ok())).expected(sources.join(" or "));
    rows.push(match &found {
        Ok(token) => row.actual(format!("found, {} bytes", token.as_str().len())),
        Err(error) => row.detail(error.to_string()),
    });

    let fetched = fetch::keys(client, provider, None).await;
    let mut report = provider_report(provider);
    let key_set = match fetched {
        Ok((fetched, _)) => {
            report.keys_from = Some(fetched.origin);
            Some(fetched.keys)
        }
        Err(error) => {
            report.fetch_error = Some(chain(&error));
            None
        }
    };

    let token = found.ok();
    let jws = token.as_ref().map(|t| Jws::parse(t.as_str()));
    rows.push(match &jws {
        None => Check::new("format", Status::Skip),
        Some(Ok(jws)) => Check::new("format", Status::Pass).actual(format!(
            "compact JWS, alg {}, kid {}",
            jws.alg_name(),
            jws.kid().map_or("(none)".to_owned(), |k| format!("{k:?}"))
        )),
        Some(Err(error)) => Check::new("format", Status::Fail).detail(error.to_string()),
    });
    let jws = jws.and_then(Result::ok);
    signature::check(
        provider,
        jws.as_ref(),
        key_set.as_ref(),
        &mut report,
        &mut rows,
    );

    match claims {
        Some(claims) => {
            rows.extend(registered(claims, provider, now));
            rows.extend(claims::policy(policy, claims));
        }
        None => rows.push(Check::new("claims", Status::Skip).detail("no claim set decoded")),
    }
    Table {
        provider: Some(report),
        rows,
    }
}

/// `iss`, then each time claim on its own: `registered` checks them in this order and
/// stops at the first failure, so each row asks it about one claim only.
fn registered(claims: &Claims, provider: &Provider, now: UnixTime) -> Vec<Check> {
    let skew = provider.clock_skew;
    let issuer = &provider.issuer;
    let mut rows = Vec::new();

    let found = claims
        .get("iss")
        .map_or("(absent)".to_owned(), Value::to_string);
    let iss = verify::registered(claims, issuer, now, skew);
    let iss_ok = !matches!(iss, Err(ClaimError::IssuerMismatch { .. }));
    rows.push(
        Check::new("issuer", status(iss_ok))
            .expected(format!("{issuer:?}"))
            .actual(found),
    );

    // A far `exp` and the expected `iss` isolate the claim under test.
    let far = json!(1e15);
    let only = |name: &str| {
        let mut one = Claims::new();
        one.insert("iss".into(), json!(issuer));
        one.insert("exp".into(), far.clone());
        match claims.get(name) {
            Some(value) => one.insert(name.into(), value.clone()),
            None => one.remove(name),
        };
        one
    };
    let window = format!("now {now}, skew {}s", skew.as_secs());
    for name in ["exp", "nbf", "iat"] {
        let Some(value) = claims.get(name) else {
            rows.push(match name {
                "exp" => Check::new("exp", Status::Fail)
                    .expected("present")
                    .actual("(absent)")
                    .detail("tollgate requires exp"),
                _ => Check::new(name, Status::Pass).actual("(absent)"),
            });
            continue;
        };
        let result = verify::registered(&only(name), issuer, now, skew);
        let expected = match name {
            "exp" => format!("later than now - skew ({window})"),
            _ => format!("not after now + skew ({window})"),
        };
        let row = Check::new(name, status(result.is_ok()))
            .expected(expected)
            .actual(when(value, now));
        rows.push(match result {
            Ok(_) => row,
            Err(error) => row.detail(error.to_string()),
        });
    }
    rows
}

/// A NumericDate with how far it is from now.
fn when(value: &Value, now: UnixTime) -> String {
    let Some(at) = value.as_f64() else {
        return value.to_string();
    };
    let delta = at - now as f64;
    let span = humantime::format_duration(Duration::from_secs(delta.abs() as u64));
    if delta >= 0.0 {
        format!("{value} (in {span})")
    } else {
        format!("{value} ({span} ago)")
    }
}

fn provider_report(provider: &Provider) -> ProviderReport {
    ProviderReport {
        name: provider.name.to_string(),
        issuer: provider.issuer.clone(),
        algorithms: provider
            .algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect(),
        clock_skew_s: provider.clock_skew.as_secs(),
        keys_from: None,
        keys: Vec::new(),
        fetch_error: None,
    }
}

/// An error and its causes, as one line.
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
