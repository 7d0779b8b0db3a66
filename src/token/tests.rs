//! Table-driven tests of token extraction (RFC 6750 §2, BR-25, BR-19 f).

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

use super::*;

const T: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

fn check(path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let http = HttpRequest {
        method: "GET".into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    raw(http)
}

fn raw(http: HttpRequest) -> CheckRequest {
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

fn bearer(value: &str) -> Result<String, TokenError> {
    let request = check("/", &[("authorization", value)]);
    extract(
        &[TokenSource::bearer()],
        HttpRequestView::new(&request),
        8192,
    )
    .map(|t| t.as_str().to_owned())
}

#[test]
fn authorization_header_values() {
    let cases: Vec<(String, Result<&str, &str>)> = vec![
        (format!("Bearer {T}"), Ok(T)),
        (format!("bearer {T}"), Ok(T)),
        (format!("BEARER {T}"), Ok(T)),
        (format!("Bearer   {T}"), Ok(T)),
        (format!("  Bearer {T}   "), Ok(T)),
        (format!("Bearer\t{T}"), Err("malformed")),
        (T.to_string(), Err("missing")),
        ("Basic dXNlcjpwYXNz".into(), Err("missing")),
        ("Bearer".into(), Err("malformed")),
        ("Bearer ".into(), Err("malformed")),
        (format!("Bearer Bearer {T}"), Err("malformed")),
        (format!("Bearer {T} trailing-junk"), Err("malformed")),
        (format!("Bearer {T},Bearer {T}"), Err("malformed")),
        (format!("BearerX {T}"), Err("missing")),
        ("Bearer ====".into(), Err("malformed")),
    ];
    for (value, expected) in cases {
        let got = bearer(&value).map_err(|e| match e {
            TokenError::Missing => "missing",
            TokenError::Malformed(_) => "malformed",
            TokenError::Multiple => "multiple",
            TokenError::TooLarge { .. } => "too large",
        });
        assert_eq!(
            got.as_ref().map(String::as_str).map_err(|e| *e),
            expected,
            "{value:?}"
        );
    }
}

#[test]
fn oversize_token_is_refused_before_grammar_checks() {
    let request = check(
        "/",
        &[("authorization", &format!("Bearer {}", "a ".repeat(100)))],
    );
    let got = extract(&[TokenSource::bearer()], HttpRequestView::new(&request), 50);
    assert_eq!(
        got,
        Err(TokenError::TooLarge {
            bytes: 199,
            limit: 50
        })
    );
}

#[test]
fn raw_repeated_headers_are_two_credentials() {
    let header = |v: &str| HeaderValue {
        key: "authorization".into(),
        raw_value: format!("Bearer {v}").into_bytes(),
        ..Default::default()
    };
    let request = raw(HttpRequest {
        header_map: Some(HeaderMap {
            headers: vec![header(T), header(T)],
        }),
        ..Default::default()
    });
    let got = extract(
        &[TokenSource::bearer()],
        HttpRequestView::new(&request),
        8192,
    );
    assert_eq!(got, Err(TokenError::Multiple));
}

#[test]
fn raw_non_utf8_header_is_malformed() {
    let request = raw(HttpRequest {
        header_map: Some(HeaderMap {
            headers: vec![HeaderValue {
                key: "authorization".into(),
                raw_value: b"Bearer \xff\xfe".to_vec(),
                ..Default::default()
            }],
        }),
        ..Default::default()
    });
    let got = extract(
        &[TokenSource::bearer()],
        HttpRequestView::new(&request),
        8192,
    );
    assert!(matches!(got, Err(TokenError::Malformed(_))));
}

#[test]
fn query_cookie_and_custom_header_sources() {
    let sources = [
        TokenSource::Query("access_token".into()),
        TokenSource::Cookie("at".into()),
        TokenSource::Header {
            name: "x-token".into(),
            scheme: None,
        },
    ];
    let cases = [
        (check(&format!("/x?a=1&access_token={T}"), &[]), Ok(T)),
        (
            check("/x", &[("cookie", &format!("theme=dark; at={T}"))]),
            Ok(T),
        ),
        (check("/x", &[("x-token", T)]), Ok(T)),
        (check("/x", &[]), Err(TokenError::Missing)),
        (
            check(&format!("/x?access_token={T}"), &[("x-token", T)]),
            Err(TokenError::Multiple),
        ),
        (
            check(&format!("/x?access_token={T}&access_token={T}"), &[]),
            Err(TokenError::Multiple),
        ),
    ];
    for (request, expected) in cases {
        let got = extract(&sources, HttpRequestView::new(&request), 8192);
        assert_eq!(
            got.as_ref().map(|t| t.as_str()),
            expected.as_ref().map(|s| *s)
        );
    }
}

#[test]
fn bearer_in_another_source_counts_as_second_credential() {
    let request = check(
        &format!("/x?access_token={T}"),
        &[("authorization", &format!("Bearer {T}"))],
    );
    let sources = [
        TokenSource::bearer(),
        TokenSource::Query("access_token".into()),
    ];
    let got = extract(&sources, HttpRequestView::new(&request), 8192);
    assert_eq!(got, Err(TokenError::Multiple));
}

#[test]
fn debug_never_shows_the_token() {
    let request = check("/", &[("authorization", &format!("Bearer {T}"))]);
    let token = extract(
        &[TokenSource::bearer()],
        HttpRequestView::new(&request),
        8192,
    )
    .unwrap();
    assert_eq!(
        format!("{token:?}"),
        format!("BearerToken({} bytes)", T.len())
    );
}
