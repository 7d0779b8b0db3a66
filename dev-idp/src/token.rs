//! JWS compact serialization (RFC 7515 §7.1) and the pieces of a claim set.
//!
//! Which key signs and what the claims say is decided by the callers in `lib.rs` and
//! `grant.rs`; this module only assembles `header.payload.signature`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::keys::{Key, b64};

/// Encodes `header` and `claims` verbatim and signs them with `key`, whatever `alg` the
/// header names.
pub(crate) fn encode(key: &Key, header: &Value, claims: &Value) -> String {
    let signing_input = format!("{}.{}", b64_json(header), b64_json(claims));
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature))
}

/// The protected header `mint` uses: `alg` of the key, `typ` `JWT`, the key's `kid`.
pub(crate) fn header_for(key: &Key) -> Value {
    serde_json::json!({ "alg": key.alg().as_str(), "typ": "JWT", "kid": key.kid() })
}

/// Seconds since the Unix epoch, as JWT `NumericDate` (RFC 7519 §2).
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// A fresh random `jti`: 16 random bytes, base64url.
pub(crate) fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness is available");
    b64(&bytes)
}

fn b64_json(value: &Value) -> String {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    b64(value.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;
    use crate::keys::KeyAlg;

    #[test]
    fn encode_keeps_the_header_verbatim() {
        let key = Key::generate("k9".into(), KeyAlg::EdDsa);
        let header = json!({ "alg": "none", "crit": ["x"] });

        let token = encode(&key, &header, &json!({ "sub": "a" }));

        let first = token.split('.').next().unwrap();
        let decoded: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(token.split('.').count(), 3);
    }

    #[test]
    fn jtis_differ() {
        assert_ne!(random_jti(), random_jti());
    }
}
