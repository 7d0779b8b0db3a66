//! A provider's signature keys, parsed one JWK at a time, and key selection.
//!
//! Each JWK is read from its own JSON value, so one entry of an unknown type, an
//! encryption key or a broken entry is skipped (and remembered, for a precise deny
//! reason) without losing the rest of the set (RFC 7517 §5: ignore what you cannot use).

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// RSA keys shorter than this are refused (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// Keys read from one JWKS document; later entries are skipped. Providers publish a
/// handful; hundreds would make every unknown `kid` a long scan.
pub const MAX_KEYS: usize = 100;

/// Tokens without `kid` are tried against at most this many keys.
pub const MAX_KIDLESS_CANDIDATES: usize = 3;

/// A key id (`kid`), safe to log.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Kid(Arc<str>);

impl Kid {
    /// Wraps a `kid` value.
    pub fn new(kid: &str) -> Self {
        Self(kid.into())
    }

    /// The `kid` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The type of a public key, which fixes the algorithms it can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with the modulus size in bits.
    Rsa(usize),
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// EdDSA on Ed25519.
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind can verify `alg` (RFC 7518 §3).
    pub fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa(_) => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// One usable signature key.
pub struct VerifyingKey {
    /// Its `kid`, when the JWK has one.
    pub kid: Option<Kid>,
    /// Its type.
    pub kind: KeyKind,
    /// The JWK's `alg`, which pins the key to one algorithm.
    pub alg: Option<Algorithm>,
    /// The key, ready for verification.
    pub key: DecodingKey,
    /// A hash of the key material, to tell whether a key is still in a later set.
    pub fingerprint: u64,
}

impl VerifyingKey {
    /// Whether this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|pinned| pinned == alg)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A JWK that was not loaded, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its `kid`, when it had one.
    pub kid: Option<Kid>,
    /// Why it was skipped.
    pub reason: String,
}

/// The usable keys of one JWKS document.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    skipped: Vec<SkippedKey>,
}

/// The keys a token may be verified with.
#[derive(Debug)]
pub enum Candidates<'a> {
    /// Try these, in order.
    Keys(Vec<&'a VerifyingKey>),
    /// The token names a `kid` this set does not have.
    UnknownKid,
    /// The named key exists but cannot verify this algorithm, or was skipped.
    KeyUnusable,
    /// The token has no `kid` and no key fits its algorithm.
    NoneFits,
}

/// Why a JWKS document could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// The body is not a JSON object with a `keys` array.
    #[error("jwks is not a JSON object with a keys array")]
    NotAKeySet(#[source] Option<serde_json::Error>),
}

impl KeySet {
    /// Parses a JWKS document, skipping every entry that cannot verify signatures.
    ///
    /// # Errors
    ///
    /// [`KeySetError`] when the document itself is not a key set. A set in which every
    /// key was skipped is returned empty; the caller decides what that means.
    pub fn parse(body: &[u8]) -> Result<Self, KeySetError> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| KeySetError::NotAKeySet(Some(e)))?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeySetError::NotAKeySet(None))?;
        let mut set = KeySet::default();
        for (index, entry) in entries.iter().enumerate() {
            let parsed = if index < MAX_KEYS {
                parse_jwk(entry)
            } else {
                Err(format!("the set holds more than {MAX_KEYS} keys"))
            };
            match parsed {
                Ok(key) => set.keys.push(key),
                Err(reason) => set.skipped.push(SkippedKey {
                    kid: entry.get("kid").and_then(Value::as_str).map(Kid::new),
                    reason,
                }),
            }
        }
        Ok(set)
    }

    /// Usable keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Entries that were skipped, with the reason.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// The keys to try for a token's `kid` and `alg`.
    ///
    /// A token that names a `kid` is checked only against keys with exactly that `kid`; a
    /// token without one against the keys that fit its algorithm, at most
    /// [`MAX_KIDLESS_CANDIDATES`] of them.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Candidates<'_> {
        let Some(kid) = kid else {
            let keys: Vec<_> = self
                .keys
                .iter()
                .filter(|k| k.fits(alg))
                .take(MAX_KIDLESS_CANDIDATES)
                .collect();
            return if keys.is_empty() {
                Candidates::NoneFits
            } else {
                Candidates::Keys(keys)
            };
        };
        let mut named = self
            .keys
            .iter()
            .filter(|k| k.kid.as_ref().is_some_and(|k| k.as_str() == kid));
        let Some(first) = named.next() else {
            let skipped = self
                .skipped
                .iter()
                .any(|s| s.kid.as_ref().is_some_and(|k| k.as_str() == kid));
            return if skipped {
                Candidates::KeyUnusable
            } else {
                Candidates::UnknownKid
            };
        };
        let keys: Vec<_> = std::iter::once(first)
            .chain(named)
            .filter(|k| k.fits(alg))
            .collect();
        if keys.is_empty() {
            Candidates::KeyUnusable
        } else {
            Candidates::Keys(keys)
        }
    }

    /// Whether a key with this fingerprint is in the set.
    pub fn has_fingerprint(&self, fingerprint: u64) -> bool {
        self.keys.iter().any(|k| k.fingerprint == fingerprint)
    }

    /// Whether a `kid` is in this set (usable or not).
    pub fn knows(&self, kid: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.kid.as_ref().is_some_and(|k| k.as_str() == kid))
    }
}

fn parse_jwk(jwk: &Value) -> Result<VerifyingKey, String> {
    let field = |name: &str| jwk.get(name);
    let text = |name: &str| -> Result<Option<&str>, String> {
        match field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("{name} is not a string")),
        }
    };
    if !jwk.is_object() {
        return Err("entry is not a JSON object".into());
    }
    let kid = text("kid")?.map(Kid::new);
    if let Some(usage) = text("use")?
        && usage != "sig"
    {
        return Err(format!("use is {usage:?}, not sig"));
    }
    if let Some(ops) = field("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"));
        if !verifies {
            return Err("key_ops does not include verify".into());
        }
    }
    let alg = match text("alg")? {
        None => None,
        Some(name) => Some(signature_algorithm(name).ok_or_else(|| {
            format!("alg {name:?} is not a signature algorithm tollgate verifies")
        })?),
    };

    let (kind, key) = match text("kty")? {
        Some("RSA") => rsa_key(text("n")?, text("e")?)?,
        Some("EC") => ec_key(text("crv")?, text("x")?, text("y")?)?,
        Some("OKP") => match (text("crv")?, text("x")?) {
            (Some("Ed25519"), Some(x)) => {
                let bytes = decode(x, "x")?;
                if bytes.len() != 32 {
                    return Err("Ed25519 x is not 32 bytes".into());
                }
                (KeyKind::Ed25519, DecodingKey::from_ed_der(&bytes))
            }
            (Some(crv), _) => return Err(format!("OKP curve {crv:?} is not supported")),
            (None, _) => return Err("OKP key without crv".into()),
        },
        Some("oct") => return Err("symmetric keys are never used to verify".into()),
        Some(kty) => return Err(format!("key type {kty:?} is not supported")),
        None => return Err("no kty".into()),
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err(format!("alg {alg:?} does not fit a {kind:?} key"));
    }
    let fingerprint = fingerprint(kind, &key);
    Ok(VerifyingKey {
        kid,
        kind,
        alg,
        key,
        fingerprint,
    })
}

fn fingerprint(kind: KeyKind, key: &DecodingKey) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{kind:?}").hash(&mut hasher);
    match key.kind() {
        jsonwebtoken::DecodingKeyKind::SecretOrDer(bytes) => bytes.hash(&mut hasher),
        jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e } => (n, e).hash(&mut hasher),
    }
    hasher.finish()
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<(KeyKind, DecodingKey), String> {
    let (Some(n), Some(e)) = (n, e) else {
        // Not yet: keys published only as an `x5c` certificate chain are skipped.
        return Err("RSA key without n and e".into());
    };
    let n = decode(n, "n")?;
    let e = decode(e, "e")?;
    // Some publishers prepend a sign byte (BR-21); the key is the unsigned integer.
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    let bits = n
        .first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits is under {MIN_RSA_BITS}"
        ));
    }
    if e.is_empty() {
        return Err("RSA exponent is zero".into());
    }
    Ok((
        KeyKind::Rsa(bits),
        DecodingKey::from_rsa_raw_components(n, e),
    ))
}

fn ec_key(
    crv: Option<&str>,
    x: Option<&str>,
    y: Option<&str>,
) -> Result<(KeyKind, DecodingKey), String> {
    let (kind, size) = match crv {
        Some("P-256") => (KeyKind::P256, 32),
        Some("P-384") => (KeyKind::P384, 48),
        Some(crv) => return Err(format!("EC curve {crv:?} is not supported")),
        None => return Err("EC key without crv".into()),
    };
    let (Some(x), Some(y)) = (x, y) else {
        return Err("EC key without x and y".into());
    };
    let (x, y) = (decode(x, "x")?, decode(y, "y")?);
    if x.len() != size || y.len() != size {
        return Err(format!("EC coordinates are not {size} bytes"));
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok((kind, DecodingKey::from_ec_der(&point)))
}

/// Maps a JOSE `alg` name to a signature algorithm tollgate verifies; never `none` or HMAC.
pub fn signature_algorithm(name: &str) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match name {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" | "Ed25519" => EdDSA,
        _ => return None,
    })
}

fn decode(value: &str, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("{name} is not base64url"))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests;
