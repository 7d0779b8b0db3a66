//! `<issuer-signing-keys>` converted to a JWKS file.
//!
//! RSA keys given as modulus `n` and exponent `e` become JWKs, each checked the way
//! tollgate will load it (so a short key is reported now, not skipped at start).
//! Symmetric keys and certificates stored in API Management cannot be converted.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use roxmltree::Node;
use serde_json::{Value, json};

use crate::apim::{FindingKind, Findings, Jwks, text, unreadable};
use crate::jwks::KeySet;

/// The JWKS of the usable `n`/`e` keys, written as `BASE-jwks.json`.
pub(super) fn jwks(list: Node<'_, '_>, base: &str, findings: &mut Findings) -> Option<Jwks> {
    let mut keys = Vec::new();
    for key in list.children().filter(Node::is_element) {
        if !key.has_tag_name("key") {
            findings.element(key, FindingKind::Unsupported, "unknown element");
            continue;
        }
        if let Some(jwk) = jwk(key, findings) {
            keys.push(jwk);
        }
    }
    if keys.is_empty() {
        return None;
    }
    let document = json!({ "keys": keys });
    let json = serde_json::to_string_pretty(&document).ok()?;
    Some(Jwks {
        file_name: format!("{base}-jwks.json"),
        json: json + "\n",
    })
}

fn jwk(key: Node<'_, '_>, findings: &mut Findings) -> Option<Value> {
    for attribute in key.attributes() {
        let name = attribute.name();
        match name {
            "id" | "n" | "e" => {}
            "certificate-id" => findings.attribute(
                key,
                name,
                FindingKind::Unsupported,
                "certificates stored in API Management cannot be read: write the key's \
                 modulus and exponent as n and e",
            ),
            _ => findings.attribute(key, name, FindingKind::Unsupported, "unknown attribute"),
        }
    }
    let secret = text(key);
    if !secret.is_empty() {
        let why = unreadable(&secret).unwrap_or(
            "symmetric (base64) keys are not supported: tollgate verifies asymmetric \
             signatures only",
        );
        findings.element(key, FindingKind::Unsupported, why);
    }
    let (n, e) = match (key.attribute("n"), key.attribute("e")) {
        (Some(n), Some(e)) => (n, e),
        (None, None) => return None,
        _ => {
            let why = "n and e go together; key not converted";
            findings.element(key, FindingKind::Unsupported, why);
            return None;
        }
    };
    let (Some(n), Some(e)) = (base64url(n), base64url(e)) else {
        let why = "n or e is not base64url; key not converted";
        findings.element(key, FindingKind::Unsupported, why);
        return None;
    };

    let mut jwk = json!({ "kty": "RSA", "use": "sig", "n": n, "e": e });
    match key.attribute("id") {
        Some(kid) => jwk["kid"] = json!(kid),
        None => findings.element(
            key,
            FindingKind::Differs,
            "no id: tollgate checks a token that names a kid only against the key with that \
             kid, so add the kid as id (tokens without kid are tried against this key)",
        ),
    }
    let loaded = KeySet::parse(json!({ "keys": [&jwk] }).to_string().as_bytes());
    match loaded.as_ref().map(|set| set.skipped().first()) {
        Ok(None) => Some(jwk),
        Ok(Some(skipped)) => {
            let why = format!("tollgate would skip this key: {}", skipped.reason);
            findings.element(key, FindingKind::Unsupported, &why);
            None
        }
        Err(_) => None,
    }
}

/// Canonical base64url of a value in base64url or base64, padded or not.
fn base64url(value: &str) -> Option<String> {
    let value = value.trim().trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(value)
        .or_else(|_| STANDARD.decode(pad(value)))
        .ok()?;
    (!bytes.is_empty()).then(|| URL_SAFE_NO_PAD.encode(bytes))
}

fn pad(value: &str) -> String {
    let mut padded = value.to_owned();
    while !padded.len().is_multiple_of(4) {
        padded.push('=');
    }
    padded
}
