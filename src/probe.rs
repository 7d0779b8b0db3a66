//! `tollgate check-config --online`: the problems a valid config can still have, found by
//! asking the providers instead of waiting for 401s.
//!
//! Each provider's discovery document and key set are fetched as the refresh task would
//! fetch them ([`crate::jwks::fetch::keys`]): an issuer that differs from the published
//! one, an unreachable `jwks_uri`, or a key set without a key for the allowed algorithms
//! is an error, since every token would be denied. Policies that no route and no default
//! selects are warnings: only Envoy's `context_extensions` can reach them, which this
//! command cannot see. Whether the audiences a policy accepts are ever issued is not
//! published by providers, so it is not checked.

use std::collections::BTreeSet;
use std::fmt;

use futures_util::future::join_all;

use crate::config::Config;
use crate::config::file::File;
use crate::jwks::discovery::DiscoveryError;
use crate::jwks::fetch::{self, FetchError};
use crate::jwks::key_set::KeyKind;
use crate::policy::{KeySource, Provider};

/// One result of the online check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What it is about (`provider idp`, `policy orders`).
    pub subject: String,
    /// What was found.
    pub message: String,
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Works as configured.
    Ok,
    /// May be intended; check it.
    Warning,
    /// Requests will be denied because of it.
    Error,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{severity:<8} {}: {}", self.subject, self.message)
    }
}

impl Finding {
    fn new(severity: Severity, subject: String, message: impl Into<String>) -> Self {
        Self {
            severity,
            subject,
            message: message.into(),
        }
    }
}

/// Fetches every provider's keys and looks for unreachable policies.
pub async fn check(config: &Config, client: &reqwest::Client) -> Vec<Finding> {
    let providers = config.providers.iter().map(|p| provider(p, client));
    let mut findings: Vec<Finding> = join_all(providers).await.into_iter().flatten().collect();
    findings.extend(reachability(config));
    findings
}

async fn provider(provider: &Provider, client: &reqwest::Client) -> Vec<Finding> {
    let subject = format!("provider {}", provider.name);
    let fetched = match fetch::keys(client, provider, None).await {
        Ok((fetched, _)) => fetched,
        Err(error) => {
            return vec![Finding::new(
                Severity::Error,
                subject,
                failure(provider, &error),
            )];
        }
    };

    let mut findings = Vec::new();
    if let KeySource::Discovery(url) = &provider.source {
        let message = format!("discovery {url} publishes issuer {:?}", provider.issuer);
        findings.push(Finding::new(Severity::Ok, subject.clone(), message));
    }
    let keys = fetched.keys.keys();
    let allowed = &provider.algorithms;
    let described: Vec<String> = keys
        .iter()
        .map(|k| {
            let kid = k.kid.as_ref().map_or("(no kid)", |k| k.as_str());
            format!("{kid} {}", kind(k.kind))
        })
        .collect();
    let usable = keys
        .iter()
        .filter(|k| allowed.iter().any(|alg| k.fits(*alg)))
        .count();
    let names: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    let (severity, message) = if usable == 0 {
        let message = format!(
            "no key at {} fits the allowed algorithms [{}]: keys are {}; every token \
             would be denied (no_usable_key or key_unusable)",
            fetched.origin,
            names.join(", "),
            described.join(", ")
        );
        (Severity::Error, message)
    } else {
        let message = format!(
            "{usable} usable key(s) at {}: {}",
            fetched.origin,
            described.join(", ")
        );
        (Severity::Ok, message)
    };
    findings.push(Finding::new(severity, subject.clone(), message));
    for key in keys
        .iter()
        .filter(|k| !allowed.iter().any(|alg| k.fits(*alg)))
    {
        let kid = key.kid.as_ref().map_or("(no kid)", |k| k.as_str());
        let message = format!(
            "key {kid} ({}) fits none of the allowed algorithms [{}]",
            kind(key.kind),
            names.join(", ")
        );
        findings.push(Finding::new(Severity::Warning, subject.clone(), message));
    }
    for skipped in fetched.keys.skipped() {
        let kid = skipped.kid.as_ref().map_or("(no kid)", |k| k.as_str());
        let message = format!("key {kid} is skipped: {}", skipped.reason);
        findings.push(Finding::new(Severity::Warning, subject.clone(), message));
    }
    findings
}

/// What a failed fetch means for requests.
fn failure(provider: &Provider, error: &FetchError) -> String {
    let discovery = match &provider.source {
        KeySource::Discovery(url) => Some(url.as_str()),
        _ => None,
    };
    let unavailable = "keys never load, so every token is answered 503 keys_unavailable";
    match error {
        FetchError::Discovery(DiscoveryError::IssuerMismatch { url, published, .. }) => format!(
            "issuer mismatch: discovery {url} publishes issuer {published:?}, the config says \
             {:?}; {unavailable} (set issuer: {published})",
            provider.issuer
        ),
        FetchError::Http { url, .. }
        | FetchError::Status { url, .. }
        | FetchError::TooLarge { url }
            if Some(url.as_str()) == discovery =>
        {
            format!(
                "discovery document unreachable: {}; {unavailable}",
                chain(error)
            )
        }
        FetchError::Http { .. } | FetchError::Status { .. } | FetchError::TooLarge { .. } => {
            format!("jwks_uri unreachable: {}; {unavailable}", chain(error))
        }
        _ => format!("{}; {unavailable}", chain(error)),
    }
}

/// Policies that neither a route nor the default selects.
fn reachability(config: &Config) -> Vec<Finding> {
    let Some(raw) = std::fs::read_to_string(&config.path)
        .ok()
        .and_then(|text| serde_saphyr::from_str::<File>(&text).ok())
    else {
        return Vec::new();
    };
    let mut reached: BTreeSet<&str> = raw
        .routes
        .iter()
        .filter_map(|r| r.policy.as_deref())
        .collect();
    reached.extend(raw.default.as_deref());
    let mut findings = Vec::new();
    for name in raw
        .policies
        .keys()
        .filter(|n| !reached.contains(n.as_str()))
    {
        let message = format!(
            "no route and not the default: only Envoy can select it, with \
             context_extensions: {{ policy: {name} }} on a route; make sure one does"
        );
        findings.push(Finding::new(
            Severity::Warning,
            format!("policy {name}"),
            message,
        ));
    }
    let used: BTreeSet<&str> = raw
        .policies
        .values()
        .filter_map(|p| p.provider.as_deref())
        .collect();
    for name in raw.providers.keys().filter(|n| !used.contains(n.as_str())) {
        let message = "no policy uses it; its keys are fetched for nothing";
        findings.push(Finding::new(
            Severity::Warning,
            format!("provider {name}"),
            message,
        ));
    }
    findings
}

fn kind(kind: KeyKind) -> String {
    match kind {
        KeyKind::Rsa(bits) => format!("RSA {bits}"),
        KeyKind::P256 => "EC P-256".into(),
        KeyKind::P384 => "EC P-384".into(),
        KeyKind::Ed25519 => "Ed25519".into(),
    }
}

/// An error and its causes, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
