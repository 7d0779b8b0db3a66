//! The Check request `explain` hands to the pipeline: method, host and path as given, and
//! the token where the policy looks for it first.

use std::collections::HashMap;
use std::path::Path;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

use crate::config::file::{File, RouteMatch};
use crate::policy::TokenPolicy;
use crate::token::TokenSource;

/// Envoy's request id for the explained request, which becomes its correlation id.
pub(super) const REQUEST_ID: &str = "tollgate-explain";

/// The path and headers that carry `token` in the policy's first token source.
pub(super) fn place(
    policy: &TokenPolicy,
    path: &str,
    token: &str,
) -> (String, Vec<(String, String)>) {
    let Some(source) = policy.sources.first() else {
        return (path.to_owned(), Vec::new());
    };
    match source {
        TokenSource::Header {
            name,
            scheme: Some(scheme),
        } => (
            path.to_owned(),
            vec![(name.clone(), format!("{scheme} {token}"))],
        ),
        TokenSource::Header { name, scheme: None } => {
            (path.to_owned(), vec![(name.clone(), token.to_owned())])
        }
        TokenSource::Query(name) => {
            let separator = if path.contains('?') { '&' } else { '?' };
            let pair: String = form_urlencoded::Serializer::new(String::new())
                .append_pair(name, token)
                .finish();
            (format!("{path}{separator}{pair}"), Vec::new())
        }
        TokenSource::Cookie(name) => (
            path.to_owned(),
            vec![("cookie".to_owned(), format!("{name}={token}"))],
        ),
    }
}

/// A Check request as Envoy sends it for this request line and headers.
pub(super) fn build(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> CheckRequest {
    let http = HttpRequest {
        id: REQUEST_ID.to_owned(),
        method: method.to_owned(),
        host: host.to_owned(),
        path: path.to_owned(),
        headers: headers.iter().cloned().collect::<HashMap<_, _>>(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Route `index` of the config file as written (`{ prefix: /orders, methods: [GET] }`).
pub(super) fn route_text(config: &Path, index: usize) -> String {
    let route = std::fs::read_to_string(config)
        .ok()
        .and_then(|text| serde_saphyr::from_str::<File>(&text).ok())
        .and_then(|file| file.routes.into_iter().nth(index));
    match route {
        Some(route) => match_text(&route.matcher),
        None => "{ ... }".to_owned(),
    }
}

fn match_text(matcher: &RouteMatch) -> String {
    let mut parts = Vec::new();
    if let Some(host) = &matcher.host {
        parts.push(format!("host: {host}"));
    }
    if let Some(prefix) = &matcher.prefix {
        parts.push(format!("prefix: {prefix}"));
    }
    if let Some(exact) = &matcher.exact {
        parts.push(format!("exact: {exact}"));
    }
    if let Some(methods) = &matcher.methods {
        parts.push(format!("methods: [{}]", methods.join(", ")));
    }
    if parts.is_empty() {
        "{ }".to_owned()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}
