//! Writing the imported config and the Envoy snippet as YAML, by hand, so that they carry
//! comments where a user must look (placeholders, APIM's defaults).
//!
//! Scalars stay plain only when YAML cannot read them as anything but a string; all
//! others are double-quoted with JSON escapes, which YAML reads the same.

use std::fmt::Write;

use super::cors::Cors;
use super::validate_jwt::{
    APIM_ALGORITHMS, Claim, Converted, PLACEHOLDER, Policy, Provider, Source, TokenSource,
};

/// The tollgate config: providers, then policies.
pub(super) fn config(source: &str, converted: &[Converted]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tollgate config imported from {source} by `tollgate import-apim`.\n\
         # Fill in every {PLACEHOLDER}, read the report printed with it, then run\n\
         # `tollgate check-config --config FILE --online`.\n\nproviders:"
    );
    for provider in converted.iter().flat_map(|c| &c.providers) {
        write_provider(&mut out, provider);
    }
    out.push_str("\npolicies:\n");
    for policy in converted.iter().flat_map(|c| &c.policies) {
        write_policy(&mut out, policy);
    }
    out
}

fn write_provider(out: &mut String, provider: &Provider) {
    let _ = writeln!(out, "  {}:", scalar(&provider.name));
    match &provider.issuer {
        Some(issuer) => {
            let _ = writeln!(out, "    issuer: {}", scalar(issuer));
        }
        None => {
            let _ = writeln!(
                out,
                "    issuer: {PLACEHOLDER}  # {PLACEHOLDER}: the exact iss of this provider's tokens"
            );
        }
    }
    let _ = match &provider.source {
        Source::Discovery(url) => writeln!(out, "    discovery: {}", scalar(url)),
        Source::JwksFile(file) => writeln!(out, "    jwks_file: {}", scalar(file)),
    };
    let _ = writeln!(
        out,
        "    algorithms: [{}]  # what APIM's validate-jwt verifies\n    \
         clock_skew: {}s  # APIM's clock-skew (default 0 s; tollgate's own default is 60s)",
        APIM_ALGORITHMS.join(", "),
        provider.clock_skew,
    );
}

fn write_policy(out: &mut String, policy: &Policy) {
    let _ = writeln!(out, "  {}:", scalar(&policy.name));
    let _ = writeln!(out, "    provider: {}", scalar(&policy.provider));
    if policy.audiences.is_empty() {
        let _ = writeln!(
            out,
            "    audiences: [{PLACEHOLDER}]  # {PLACEHOLDER}: the aud your tokens carry"
        );
    } else {
        let _ = writeln!(out, "    audiences: {}", list(&policy.audiences));
    }
    if let Some(scopes) = &policy.scopes {
        let _ = writeln!(out, "    scopes: {}", value_match(scopes, false));
        let _ = writeln!(out, "    scope_claims: [{}]", scalar(&scopes.name));
    }
    if !policy.claims.is_empty() {
        out.push_str("    claims:\n");
        for claim in &policy.claims {
            let _ = writeln!(
                out,
                "      {}: {}",
                scalar(&claim.name),
                value_match(claim, true)
            );
        }
    }
    out.push_str("    token:\n");
    for source in &policy.token {
        let _ = match source {
            TokenSource::Header {
                name,
                scheme: Some(scheme),
            } => writeln!(
                out,
                "      - {{ header: {}, scheme: {} }}",
                scalar(name),
                scalar(scheme)
            ),
            TokenSource::Header { name, scheme: None } => {
                writeln!(out, "      - {{ header: {} }}", scalar(name))
            }
            TokenSource::Query(name) => writeln!(out, "      - {{ query: {} }}", scalar(name)),
        };
    }
    let message = policy
        .message
        .as_ref()
        .map(|m| format!(", message: {}", quoted(m)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "    on_failure: {{ status: {}{message} }}  # APIM answers every failure with this status",
        policy.status
    );
}

/// The Envoy snippet for a route: ext_authz naming the policy, and CORS.
pub(super) fn envoy(source: &str, policy: &str, cors: Option<&Cors>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Envoy route settings imported from {source} by `tollgate import-apim`.\n\
         # Merge them into the route (or virtual host) that served this API in APIM.\n\
         typed_per_filter_config:\n  \
           envoy.filters.http.ext_authz:\n    \
             \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute\n    \
             check_settings:\n      \
               context_extensions: {{ policy: {} }}",
        scalar(policy)
    );
    let Some(cors) = cors else {
        return out;
    };
    let _ = writeln!(
        out,
        "  # Needs envoy.filters.http.cors in http_filters, before ext_authz: it answers\n  \
         # preflights itself, as APIM evaluates only cors on a preflight.\n  \
         envoy.filters.http.cors:\n    \
           \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy\n    \
           allow_origin_string_match:"
    );
    match &cors.origins {
        None => out.push_str("      - safe_regex: { regex: \".*\" }\n"),
        Some(origins) => {
            for origin in origins {
                let _ = writeln!(out, "      - exact: {}", quoted(origin));
            }
        }
    }
    let header_list = |values: &[String]| quoted(&values.join(", "));
    let _ = writeln!(out, "    allow_methods: {}", header_list(&cors.methods));
    if !cors.headers.is_empty() {
        let _ = writeln!(out, "    allow_headers: {}", header_list(&cors.headers));
    }
    let _ = writeln!(
        out,
        "    expose_headers: {}\n    \
         max_age: \"{}\"\n    \
         allow_credentials: {}\n    \
         forward_not_matching_preflights: {}",
        header_list(&cors.expose),
        cors.max_age,
        cors.credentials,
        !cors.terminate_unmatched,
    );
    out
}

fn value_match(claim: &Claim, with_separator: bool) -> String {
    let kind = if claim.all { "all" } else { "any" };
    let separator = match (&claim.separator, with_separator) {
        (Some(separator), true) => format!(", separator: {}", quoted(separator)),
        _ => String::new(),
    };
    format!("{{ {kind}: {}{separator} }}", list(&claim.values))
}

fn list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| scalar(v)).collect();
    format!("[{}]", items.join(", "))
}

/// A YAML scalar that reads back as exactly `value`, a string.
pub(super) fn scalar(value: &str) -> String {
    let plain = value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:-@+".contains(c))
        && !value.ends_with(':')
        && !matches!(
            value.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        value.to_owned()
    } else {
        quoted(value)
    }
}

/// A double-quoted scalar, escaped as JSON (which YAML reads the same).
pub(super) fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_the_same_string() {
        let cases = [
            ("api://orders", "api://orders"),
            (
                "https://login.example.test/t/v2.0",
                "https://login.example.test/t/v2.0",
            ),
            ("true", "\"true\""),
            ("00001111-aaaa", "\"00001111-aaaa\""),
            ("insert claim here", "\"insert claim here\""),
            ("a, b", "\"a, b\""),
            ("say \"hi\"\n", "\"say \\\"hi\\\"\\u000a\""),
            ("key:", "\"key:\""),
            ("", "\"\""),
        ];
        for (value, expected) in cases {
            assert_eq!(scalar(value), expected, "{value}");
        }
    }
}
