//! Property tests of every parser that reads untrusted input: whatever the bytes, they
//! return an answer and never panic. (The nightly toolchain `cargo fuzz` needs is not
//! installed here; these run in every CI build instead.)

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use proptest::prelude::*;
use tollgate::jwks::KeySet;
use tollgate::jwks::discovery;
use tollgate::policy::requirement::{Scalars, claim_values};
use tollgate::request::HttpRequestView;
use tollgate::token::{self, TokenSource};
use tollgate::verify::Jws;

fn request(path: String, headers: Vec<(String, Vec<u8>)>) -> CheckRequest {
    let headers = headers
        .into_iter()
        .map(|(key, raw_value)| HeaderValue {
            key,
            raw_value,
            ..Default::default()
        })
        .collect();
    let http = HttpRequest {
        path,
        header_map: Some(HeaderMap { headers }),
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

/// Strings shaped like tokens: base64url-ish segments with dots, and some noise.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_=+/.-]{0,200}",
        "eyJ[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,90}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn jws_parsing_never_panics(token in token_like()) {
        if let Ok(jws) = Jws::parse(&token) {
            let _ = jws.algorithm(&[jsonwebtoken::Algorithm::RS256]);
            let _ = jws.claims();
        }
    }

    #[test]
    fn valid_headers_with_any_payload_never_panic(
        payload in any::<Vec<u8>>(),
        sig in any::<Vec<u8>>(),
    ) {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = b64(br#"{"alg":"RS256","kid":"k"}"#);
        let token = format!("{header}.{}.{}", b64(&payload), b64(&sig));
        let jws = Jws::parse(&token);
        prop_assert!(jws.is_ok() || sig.is_empty());
        if let Ok(jws) = jws {
            let _ = jws.claims();
        }
    }

    #[test]
    fn key_set_parsing_never_panics(body in any::<Vec<u8>>()) {
        let _ = KeySet::parse(&body);
    }

    #[test]
    fn jwk_entries_of_any_shape_never_panic(
        kty in prop_oneof!["RSA", "EC", "OKP", "oct", ".*"],
        crv in prop_oneof!["P-256", "P-384", "Ed25519", ".*"],
        n in "[A-Za-z0-9_-]{0,400}",
        e in "[A-Za-z0-9_-]{0,8}",
        x in "[A-Za-z0-9_-]{0,90}",
        alg in prop_oneof!["RS256", "ES256", "EdDSA", "HS256", "none", ".*"],
    ) {
        let doc = serde_json::json!({"keys": [{
            "kty": kty, "crv": crv, "n": n, "e": e, "x": x, "y": x, "alg": alg, "kid": "k",
        }]});
        let _ = KeySet::parse(doc.to_string().as_bytes());
    }

    #[test]
    fn discovery_parsing_never_panics(body in any::<Vec<u8>>(), issuer in ".*") {
        let url = "https://idp.test/.well-known/openid-configuration";
        let _ = discovery::jwks_uri(&body, url, &issuer);
    }

    #[test]
    fn token_extraction_never_panics(
        path in "/[ -~]{0,80}",
        headers in proptest::collection::vec(
            (prop_oneof!["authorization", "cookie", "x-token"], any::<Vec<u8>>()), 0..4),
    ) {
        let check = request(path, headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let sources = [
            TokenSource::bearer(),
            TokenSource::Query("access_token".into()),
            TokenSource::Cookie("at".into()),
            TokenSource::Header { name: "x-token".into(), scheme: None },
        ];
        let _ = token::extract(&sources, HttpRequestView::new(&check), 8192);
    }

    #[test]
    fn claim_values_never_panic(
        value in any::<String>(),
        sep in prop_oneof![Just(" "), Just(","), Just("")],
    ) {
        let json = serde_json::Value::String(value);
        let held = claim_values(&json, Some(sep).filter(|s| !s.is_empty()), Scalars::Refuse);
        prop_assert!(held.is_some());
    }

    #[test]
    fn config_parsing_never_panics(text in any::<String>()) {
        let _ = tollgate::config::Config::parse(&text, std::path::Path::new("fuzz.yaml"));
    }

    #[test]
    fn yaml_shaped_configs_never_panic(
        key in prop_oneof!["server", "providers", "policies", "routes", "default", "token_cache"],
        value in "[ -~\n]{0,120}",
    ) {
        let text = format!("{key}:\n  {value}\n");
        let _ = tollgate::config::Config::parse(&text, std::path::Path::new("fuzz.yaml"));
    }
}
