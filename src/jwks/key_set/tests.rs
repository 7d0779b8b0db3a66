//! JWKS parsing and key selection (BR-08, BR-12, BR-21).

use serde_json::{Value, json};

use super::*;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xa5; bits / 8];
    n[0] = 0xc1;
    n
}

fn rsa(kid: Option<&str>, extra: Value) -> Value {
    let mut jwk = json!({"kty": "RSA", "n": b64(&modulus(2048)), "e": "AQAB"});
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    for (k, v) in extra.as_object().unwrap() {
        jwk[k] = v.clone();
    }
    jwk
}

fn parse(keys: Vec<Value>) -> KeySet {
    KeySet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

#[test]
fn encryption_and_unknown_entries_are_skipped_not_fatal() {
    let set = parse(vec![
        rsa(Some("enc-1"), json!({"use": "enc", "alg": "RSA-OAEP"})),
        rsa(Some("sig-1"), json!({"use": "sig", "alg": "RS256"})),
        rsa(Some("enc-2"), json!({"alg": "RSA-OAEP-256"})),
        json!({"kid": "enc-3", "kty": "EC", "use": "enc", "crv": "P-256", "x": "AA", "y": "AA"}),
        json!({"kid": "x", "kty": "kyber"}),
        json!({"kid": "p521", "kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kid": "h", "kty": "oct", "k": "c2VjcmV0"}),
        json!("not an object"),
        rsa(Some("ops"), json!({"key_ops": ["encrypt"]})),
        rsa(Some("bad-n"), json!({"n": "***"})),
    ]);
    let kids: Vec<_> = set
        .keys()
        .iter()
        .map(|k| k.kid.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(kids, ["sig-1"]);
    assert_eq!(set.skipped().len(), 9);
    assert!(matches!(
        set.candidates(Some("enc-1"), Algorithm::RS256),
        Candidates::KeyUnusable
    ));
}

#[test]
fn rsa_components_with_leading_zero_bytes_are_accepted() {
    let mut n = vec![0];
    n.extend(modulus(2048));
    let set = parse(vec![
        json!({"kid": "k1", "kty": "RSA", "n": b64(&n), "e": "AQAB"}),
        json!({"kid": "k1e", "kty": "RSA", "n": b64(&modulus(2048)), "e": "AAEAAQ"}),
    ]);
    assert_eq!(set.keys().len(), 2);
    assert_eq!(set.keys()[0].kind, KeyKind::Rsa(2048));
}

#[test]
fn rsa_keys_under_2048_bits_are_skipped() {
    let set = parse(vec![
        json!({"kid": "weak", "kty": "RSA", "n": b64(&modulus(1024)), "e": "AQAB"}),
    ]);
    assert!(set.keys().is_empty());
    assert_eq!(
        set.skipped()[0].reason,
        "RSA modulus of 1024 bits is under 2048"
    );
}

#[test]
fn a_named_kid_is_only_matched_exactly() {
    let set = parse(vec![rsa(None, json!({}))]);
    assert!(matches!(
        set.candidates(Some("k9"), Algorithm::RS256),
        Candidates::UnknownKid
    ));
    assert!(matches!(set.candidates(None, Algorithm::RS256), Candidates::Keys(k) if k.len() == 1));
}

#[test]
fn kidless_tokens_try_a_bounded_number_of_fitting_keys() {
    let keys = (0..5)
        .map(|i| rsa(Some(&format!("k{i}")), json!({})))
        .collect();
    let set = parse(keys);
    assert!(matches!(set.candidates(None, Algorithm::RS256), Candidates::Keys(k) if k.len() == 3));
    assert!(matches!(
        set.candidates(None, Algorithm::ES256),
        Candidates::NoneFits
    ));
}

#[test]
fn the_jwk_alg_pins_the_algorithm() {
    let set = parse(vec![rsa(Some("k1"), json!({"alg": "RS256"}))]);
    assert!(matches!(
        set.candidates(Some("k1"), Algorithm::PS256),
        Candidates::KeyUnusable
    ));
    assert!(matches!(
        set.candidates(Some("k1"), Algorithm::ES256),
        Candidates::KeyUnusable
    ));
    assert!(matches!(
        set.candidates(Some("k1"), Algorithm::RS256),
        Candidates::Keys(_)
    ));
}

#[test]
fn documents_that_are_not_key_sets_are_errors() {
    for body in [&b"garbage"[..], b"", b"{}", b"{\"keys\": 3}", b"[]"] {
        assert!(KeySet::parse(body).is_err(), "{body:?}");
    }
}

#[test]
fn keys_past_the_limit_are_skipped() {
    let keys = (0..MAX_KEYS + 5)
        .map(|i| rsa(Some(&format!("k{i}")), json!({})))
        .collect();
    let set = parse(keys);
    assert_eq!(set.keys().len(), MAX_KEYS);
    assert_eq!(set.skipped().len(), 5);
    assert_eq!(set.skipped()[0].reason, "the set holds more than 100 keys");
}
