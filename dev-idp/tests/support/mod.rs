//! Helpers shared by the integration tests: HTTP fetches and JWS checks against a JWKS.
//!
//! The checks are written from the specs (RFC 7515, 7517, 7518, 8037) with aws-lc-rs, so a
//! minted token is verified by code that does not share the IdP's encoding paths.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// GETs `url` and parses the body as JSON.
pub async fn get_json(url: &str) -> Value {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

/// Decodes one base64url part of a JWT or JWK.
pub fn b64(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(part).unwrap()
}

/// Decodes a JWT part that holds JSON (header or claims).
pub fn json_part(part: &str) -> Value {
    serde_json::from_slice(&b64(part)).unwrap()
}

/// The header and claims of `token`.
pub fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS has three parts");
    (json_part(parts[0]), json_part(parts[1]))
}

/// Checks the signature of `token` with the JWK in `jwks` named by its header's `kid`, and
/// returns the claims. Panics when the key is missing or the signature is wrong.
pub fn verify(jwks: &Value, token: &str) -> Value {
    let (header, claims) = decode(token);
    let kid = header["kid"].as_str().unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|jwk| jwk["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in JWKS"));
    assert_eq!(jwk["alg"], header["alg"]);

    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    verify_with_jwk(jwk, signing_input.as_bytes(), &b64(signature)).expect("signature verifies");
    claims
}

/// Verifies a raw JWS signature with a public JWK.
pub fn verify_with_jwk(jwk: &Value, message: &[u8], signature: &[u8]) -> Result<(), String> {
    let member = |name: &str| b64(jwk[name].as_str().unwrap());
    let result = match jwk["kty"].as_str().unwrap() {
        "RSA" => RsaPublicKeyComponents {
            n: member("n"),
            e: member("e"),
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature),
        "EC" => {
            assert_eq!(jwk["crv"], "P-256");
            let point = [vec![4], member("x"), member("y")].concat();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
        }
        "OKP" => {
            assert_eq!(jwk["crv"], "Ed25519");
            UnparsedPublicKey::new(&ED25519, member("x")).verify(message, signature)
        }
        other => panic!("unexpected kty {other}"),
    };
    result.map_err(|_| "bad signature".to_owned())
}
