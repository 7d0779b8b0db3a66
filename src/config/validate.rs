//! From the file as written to a checked [`Config`]: defaults, cross references, limits.
//!
//! Problems are collected, not returned at the first one, and each names its key path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::file::{self, File};
use super::{Config, Problem};
use crate::jwks::key_set::signature_algorithm;
use crate::policy::{
    Access, ClaimPath, ForwardClaim, KeySource, Match, PathMatch, Policies, Policy, PolicyName,
    Provider, ProviderName, Requirement, Route, TokenPolicy,
};
use crate::server::tls::TlsFiles;
use crate::token::TokenSource;

/// The name of the policy that `allow: anonymous` and `default: anonymous` refer to.
pub const ANONYMOUS: &str = "anonymous";

const DEFAULT_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Checks a parsed file; `path` locates relative `jwks_file`s.
///
/// # Errors
///
/// Every problem found, each with its key path.
pub fn check(raw: File, path: &Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Problems::default();
    let base = path.parent().unwrap_or(Path::new("."));

    let grpc = address(&raw.server.grpc, "server.grpc", &mut problems);
    let admin = address(&raw.server.admin, "server.admin", &mut problems);
    if !(256..=1024 * 1024).contains(&raw.server.max_token_bytes) {
        problems.add("server.max_token_bytes", "must be between 256 and 1048576");
    }
    if raw.server.check_budget.is_zero() {
        problems.add("server.check_budget", "must be greater than zero");
    }
    let tls = raw
        .server
        .tls
        .as_ref()
        .and_then(|t| tls(t, base, &mut problems));

    let providers: BTreeMap<String, Arc<Provider>> = raw
        .providers
        .iter()
        .filter_map(|(name, p)| {
            Some((
                name.clone(),
                Arc::new(provider(name, p, base, &mut problems)?),
            ))
        })
        .collect();

    let correlation_header = raw.correlation.header.to_ascii_lowercase();
    if !is_header_name(&correlation_header) {
        problems.add("correlation.header", "is not a valid header name");
    }

    let mut policies: Vec<Policy> = raw
        .policies
        .iter()
        .filter_map(|(name, p)| {
            let key = format!("policies.{name}");
            let access = access(
                &key,
                name,
                p,
                &raw.providers,
                &correlation_header,
                &mut problems,
            )?;
            Some(Policy {
                name: PolicyName::new(name),
                access,
            })
        })
        .collect();
    let mut needs_anonymous = false;

    let mut routes = Vec::new();
    for (i, route) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let target = match (&route.policy, route.allow.as_deref()) {
            (Some(name), None) if raw.policies.contains_key(name) => PolicyName::new(name),
            (Some(name), None) => {
                problems.add(
                    format!("{key}.policy"),
                    format!("names undefined policy {name:?}"),
                );
                continue;
            }
            (None, Some(ANONYMOUS)) => {
                needs_anonymous = true;
                PolicyName::new(ANONYMOUS)
            }
            (None, Some(other)) => {
                problems.add(
                    format!("{key}.allow"),
                    format!("must be \"anonymous\", not {other:?}"),
                );
                continue;
            }
            _ => {
                problems.add(&key, "needs exactly one of policy or allow: anonymous");
                continue;
            }
        };
        if let Some(route) = route_match(&key, &route.matcher, &mut problems) {
            routes.push((route, target));
        }
    }

    let default = match raw.default.as_deref() {
        None | Some("deny") => None,
        Some(ANONYMOUS) => {
            needs_anonymous = true;
            Some(PolicyName::new(ANONYMOUS))
        }
        Some(name) if raw.policies.contains_key(name) => Some(PolicyName::new(name)),
        Some(name) => {
            problems.add(
                "default",
                format!("must be deny, anonymous or a policy name, not {name:?}"),
            );
            None
        }
    };
    if needs_anonymous && !raw.policies.contains_key(ANONYMOUS) {
        policies.push(Policy {
            name: PolicyName::new(ANONYMOUS),
            access: Access::Anonymous,
        });
    }

    let mut claim_headers: Vec<String> = policies
        .iter()
        .filter_map(|p| match &p.access {
            Access::Token(t) => Some(t.forward_claims.iter().map(|f| f.header.clone())),
            Access::Anonymous => None,
        })
        .flatten()
        .collect();
    claim_headers.sort();
    claim_headers.dedup();

    if !problems.0.is_empty() {
        return Err(problems.0);
    }
    let (Some(grpc), Some(admin)) = (grpc, admin) else {
        return Err(problems.0);
    };
    Ok(Config {
        path: path.to_owned(),
        grpc,
        admin,
        max_token_bytes: raw.server.max_token_bytes,
        check_budget: raw.server.check_budget,
        shutdown_grace: raw.server.shutdown_grace,
        tls,
        providers: providers.into_values().collect(),
        policies: Policies::new(policies, routes, default),
        correlation_header,
        claim_headers,
        token_cache_bytes: raw.token_cache.max_bytes,
        token_cache_ttl: raw.token_cache.max_ttl,
    })
}

fn address(value: &str, key: &str, problems: &mut Problems) -> Option<SocketAddr> {
    let parsed = value.parse().ok();
    if parsed.is_none() {
        problems.add(
            key,
            format!("{value:?} is not an address like 127.0.0.1:9191"),
        );
    }
    parsed
}

/// Resolves the `server.tls` paths and loads the files, so a missing file, broken PEM or
/// a key that does not fit the certificate is refused at load, not at the first handshake.
fn tls(raw: &file::Tls, base: &Path, problems: &mut Problems) -> Option<TlsFiles> {
    let mut required = |field: &str, value: &Option<String>| match value {
        Some(path) if !path.is_empty() => Some(base.join(path)),
        _ => {
            problems.add(format!("server.tls.{field}"), "is required: a PEM file");
            None
        }
    };
    let (cert, key) = (required("cert", &raw.cert), required("key", &raw.key));
    let client_ca = match raw.client_ca.as_deref() {
        Some("") => {
            problems.add("server.tls.client_ca", "must name a PEM file when set");
            return None;
        }
        other => other.map(|path| base.join(path)),
    };
    let files = TlsFiles {
        cert: cert?,
        key: key?,
        client_ca,
    };

    match files.server_config() {
        Ok(_) => Some(files),
        Err(errors) => {
            for error in errors {
                problems.add(error.file().key(), error.detail());
            }
            None
        }
    }
}

fn provider(
    name: &str,
    raw: &file::Provider,
    base: &Path,
    problems: &mut Problems,
) -> Option<Provider> {
    let key = format!("providers.{name}");
    let before = problems.0.len();
    let issuer = raw.issuer.clone().unwrap_or_default();
    if issuer.is_empty() {
        problems.add(
            format!("{key}.issuer"),
            "is required: the exact iss of this provider's tokens",
        );
    }
    let source = match (&raw.discovery, &raw.jwks_uri, &raw.jwks_file) {
        (Some(url), None, None) => {
            check_url(&format!("{key}.discovery"), url, problems);
            if url.starts_with("https://") && issuer.starts_with("http://") {
                problems.add(
                    format!("{key}.issuer"),
                    "is http while discovery is https (a downgrade)",
                );
            }
            KeySource::Discovery(url.clone())
        }
        (None, Some(url), None) => {
            check_url(&format!("{key}.jwks_uri"), url, problems);
            KeySource::JwksUri(url.clone())
        }
        (None, None, Some(file)) => {
            let file = base.join(file);
            if !file.is_file() {
                problems.add(
                    format!("{key}.jwks_file"),
                    format!("{} is not a readable file", file.display()),
                );
            }
            KeySource::JwksFile(file)
        }
        _ => {
            problems.add(
                &key,
                "needs exactly one of discovery, jwks_uri or jwks_file",
            );
            KeySource::JwksFile(PathBuf::new())
        }
    };
    let algorithms = match &raw.algorithms {
        None => DEFAULT_ALGORITHMS.to_vec(),
        Some(names) if names.is_empty() => {
            problems.add(format!("{key}.algorithms"), "must not be empty");
            Vec::new()
        }
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| algorithm(&format!("{key}.algorithms[{i}]"), n, problems))
            .collect(),
    };
    let duration =
        |value: Option<Duration>, default: u64| value.unwrap_or(Duration::from_secs(default));
    let provider = Provider {
        name: ProviderName::new(name),
        issuer,
        source,
        algorithms,
        clock_skew: duration(raw.clock_skew, 60),
        refresh: duration(raw.refresh, 600),
        min_refresh: duration(raw.min_refresh, 60),
        max_refresh: duration(raw.max_refresh, 24 * 3600),
        refetch_cooldown: duration(raw.refetch_cooldown, 30),
        max_stale: duration(raw.max_stale, 24 * 3600),
        fetch_timeout: duration(raw.fetch_timeout, 5),
        jwks_hosts: raw
            .jwks_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        issuer_aliases: raw.issuer_aliases.clone(),
    };
    if provider.issuer_aliases.iter().any(String::is_empty) {
        problems.add(
            format!("{key}.issuer_aliases"),
            "must not contain an empty issuer",
        );
    }
    if provider.min_refresh > provider.max_refresh {
        problems.add(format!("{key}.min_refresh"), "must not exceed max_refresh");
    }
    for (field, value) in [
        ("refresh", provider.refresh),
        ("fetch_timeout", provider.fetch_timeout),
    ] {
        if value.is_zero() {
            problems.add(format!("{key}.{field}"), "must be greater than zero");
        }
    }
    (problems.0.len() == before).then_some(provider)
}

fn algorithm(key: &str, name: &str, problems: &mut Problems) -> Option<Algorithm> {
    let found = signature_algorithm(name);
    if found.is_none() {
        let why = if name.eq_ignore_ascii_case("none") {
            "\"none\" is never accepted: tokens must be signed".to_owned()
        } else if name.to_ascii_uppercase().starts_with("HS") {
            format!("{name:?} is HMAC, which cannot be verified with a provider's public keys")
        } else {
            format!(
                "{name:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, \
                 ES256, ES384, EdDSA"
            )
        };
        problems.add(key, why);
    }
    found
}

fn check_url(key: &str, url: &str, problems: &mut Problems) {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        _ => problems.add(key, format!("{url:?} is not an http or https URL")),
    }
}

fn access(
    key: &str,
    name: &str,
    raw: &file::Policy,
    providers: &BTreeMap<String, file::Provider>,
    correlation_header: &str,
    problems: &mut Problems,
) -> Option<Access> {
    if raw.anonymous {
        let extra = raw.provider.is_some()
            || raw.audiences.is_some()
            || raw.scopes.is_some()
            || !raw.claims.is_empty()
            || !raw.forward_claims.is_empty();
        if extra {
            let message = "an anonymous policy takes no provider, audiences, scopes, claims or \
                           forward_claims";
            problems.add(key, message);
        }
        return Some(Access::Anonymous);
    }
    let before = problems.0.len();
    let provider = match &raw.provider {
        Some(p) if providers.contains_key(p) => ProviderName::new(p),
        Some(p) => {
            problems.add(
                format!("{key}.provider"),
                format!("names undefined provider {p:?}"),
            );
            ProviderName::new(p)
        }
        None => {
            problems.add(
                format!("{key}.provider"),
                "is required (or set anonymous: true)",
            );
            ProviderName::new("")
        }
    };
    let audiences = raw.audiences.clone().unwrap_or_default();
    if audiences.is_empty() || audiences.iter().any(String::is_empty) {
        problems.add(
            format!("{key}.audiences"),
            "must list at least one non-empty audience",
        );
    }
    let scopes = raw
        .scopes
        .as_ref()
        .and_then(|m| value_match(&format!("{key}.scopes"), m, problems));
    let scope_claims = raw
        .scope_claims
        .clone()
        .unwrap_or_else(|| vec!["scope".into(), "scp".into()])
        .iter()
        .map(|c| ClaimPath::new(c))
        .collect();
    let claims = raw
        .claims
        .iter()
        .filter_map(|(claim, m)| {
            let rule = value_match(&format!("{key}.claims.{claim}"), m, problems)?;
            Some(Requirement {
                claim: ClaimPath::new(claim),
                rule,
                separator: m.separator.clone(),
            })
        })
        .collect();
    let sources = match &raw.token {
        None => vec![TokenSource::bearer()],
        Some(list) if list.is_empty() => {
            problems.add(format!("{key}.token"), "must list at least one source");
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| token_source(&format!("{key}.token[{i}]"), s, problems))
            .collect(),
    };
    let forward_claims = raw
        .forward_claims
        .iter()
        .filter_map(|(claim, header)| {
            let header = header.to_ascii_lowercase();
            let reserved = [
                "authorization",
                "cookie",
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
            ];
            if !is_header_name(&header)
                || reserved.contains(&header.as_str())
                || header == correlation_header
            {
                problems.add(
                    format!("{key}.forward_claims.{claim}"),
                    format!("{header:?} cannot carry a claim"),
                );
                return None;
            }
            Some(ForwardClaim {
                claim: ClaimPath::new(claim),
                header,
            })
        })
        .collect();
    let (failure_status, failure_message) = match &raw.on_failure {
        Some(f) => (f.status, f.message.clone()),
        None => (None, None),
    };
    if failure_status.is_some_and(|s| !(400..=499).contains(&s)) {
        problems.add(format!("{key}.on_failure.status"), "must be a 4xx status");
    }
    let policy = TokenPolicy {
        provider,
        audiences,
        scopes,
        scope_claims,
        claims,
        sources,
        forward_claims,
        strip_token: raw.strip_token,
        realm: raw.realm.clone().unwrap_or_else(|| name.to_owned()),
        failure_status,
        failure_message,
        debug_reason_header: raw.debug_reason_header,
    };
    (problems.0.len() == before).then(|| Access::Token(Box::new(policy)))
}

fn value_match(key: &str, raw: &file::ValueMatch, problems: &mut Problems) -> Option<Match> {
    match (&raw.all, &raw.any) {
        (Some(values), None) if !values.is_empty() => Some(Match::All(values.clone())),
        (None, Some(values)) if !values.is_empty() => Some(Match::Any(values.clone())),
        _ => {
            problems.add(key, "needs exactly one non-empty list: all or any");
            None
        }
    }
}

fn token_source(
    key: &str,
    raw: &file::TokenSource,
    problems: &mut Problems,
) -> Option<TokenSource> {
    let source = match (&raw.header, &raw.query, &raw.cookie) {
        (Some(header), None, None) if is_header_name(&header.to_ascii_lowercase()) => {
            TokenSource::Header {
                name: header.to_ascii_lowercase(),
                scheme: raw.scheme.clone(),
            }
        }
        (None, Some(query), None) if !query.is_empty() => TokenSource::Query(query.clone()),
        (None, None, Some(cookie)) if !cookie.is_empty() => TokenSource::Cookie(cookie.clone()),
        _ => {
            problems.add(
                key,
                "needs exactly one of header, query or cookie, with a valid name",
            );
            return None;
        }
    };
    if raw.scheme.is_some() && raw.header.is_none() {
        problems.add(format!("{key}.scheme"), "applies only to a header source");
    }
    Some(source)
}

fn route_match(key: &str, raw: &file::RouteMatch, problems: &mut Problems) -> Option<Route> {
    let path = match (&raw.prefix, &raw.exact) {
        (None, None) => PathMatch::Any,
        (Some(p), None) if p.starts_with('/') => PathMatch::Prefix(p.clone()),
        (None, Some(p)) if p.starts_with('/') => PathMatch::Exact(p.clone()),
        (Some(_), Some(_)) => {
            problems.add(format!("{key}.match"), "takes prefix or exact, not both");
            return None;
        }
        _ => {
            problems.add(format!("{key}.match"), "paths must start with /");
            return None;
        }
    };
    let methods = raw
        .methods
        .iter()
        .flatten()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    Some(Route {
        host: raw.host.as_ref().map(|h| h.to_ascii_lowercase()),
        path,
        methods,
    })
}

/// An HTTP field name (RFC 9110 §5.1), lowercase.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
        })
}

#[cfg(test)]
mod tests;
