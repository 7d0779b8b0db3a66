//! Token verification: strict JWS parsing, algorithm choice, signature, and the
//! registered claims `iss`, `aud`, `exp`, `nbf` and `iat` with clock skew.
//!
//! The algorithm is the token's `alg` only if the provider allows it and the selected
//! key fits it (RFC 8725 §3.1); `none` and HMAC are never accepted. Encoding is strict
//! base64url without padding (RFC 7515 §2), so a token has exactly one spelling.
//! Which keys to try is [`crate::jwks`]'s business; which policy applies, the caller's.

pub mod claims;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use claims::{ClaimError, audience, registered};

use crate::jwks::key_set::{self, VerifyingKey};

/// Why a token's form, algorithm or signature was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is not a well-formed compact JWS.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `typ` names something other than a JWT access token.
    #[error("token type is not accepted")]
    TypeNotAccepted,
    /// The header has a `crit` member; tollgate understands no extensions.
    #[error("token header has crit extensions")]
    CritUnsupported,
    /// `alg` is `none`, HMAC, unknown, or not allowed for this provider.
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// The signature does not verify with any candidate key.
    #[error("signature does not verify")]
    BadSignature,
}

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct Jws<'t> {
    header: Header,
    signing_input: &'t str,
    signature: &'t str,
    payload: Vec<u8>,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

impl<'t> Jws<'t> {
    /// Splits and decodes a compact JWS.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Malformed`] for anything but three strict base64url segments with
    /// a JSON header; [`VerifyError::CritUnsupported`] and
    /// [`VerifyError::TypeNotAccepted`] for headers tollgate must not accept.
    pub fn parse(token: &'t str) -> Result<Self, VerifyError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed(if token.split('.').count() == 5 {
                "encrypted tokens (JWE) are not accepted"
            } else {
                "a JWS has exactly three segments"
            }));
        };
        if signature.is_empty() {
            return Err(VerifyError::Malformed("empty signature"));
        }
        let signing_input = &token[..header.len() + 1 + payload.len()];

        let header_json = decode(header)?;
        let payload = decode(payload)?;
        decode(signature)?;

        let header: Header = serde_json::from_slice(&header_json)
            .map_err(|_| VerifyError::Malformed("header is not a JOSE header"))?;
        if header.crit.is_some() {
            return Err(VerifyError::CritUnsupported);
        }
        if let Some(typ) = &header.typ {
            let accepted = ["JWT", "at+jwt", "application/at+jwt"];
            if !accepted.iter().any(|a| a.eq_ignore_ascii_case(typ)) {
                return Err(VerifyError::TypeNotAccepted);
            }
        }
        Ok(Self {
            header,
            signing_input,
            signature,
            payload,
        })
    }

    /// The header's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// The header's `alg`, as written.
    pub fn alg_name(&self) -> &str {
        &self.header.alg
    }

    /// The algorithm to verify with: the header's `alg` if the provider allows it.
    ///
    /// # Errors
    ///
    /// [`VerifyError::AlgorithmNotAllowed`] for `none`, HMAC, unknown names, and
    /// algorithms outside `allowed`.
    pub fn algorithm(&self, allowed: &[Algorithm]) -> Result<Algorithm, VerifyError> {
        key_set::signature_algorithm(&self.header.alg)
            .filter(|alg| allowed.contains(alg))
            .ok_or_else(|| VerifyError::AlgorithmNotAllowed(self.header.alg.clone()))
    }

    /// Verifies the signature with the first candidate key that accepts it.
    ///
    /// # Errors
    ///
    /// [`VerifyError::BadSignature`] when no candidate verifies it.
    pub fn verify<'k>(
        &self,
        alg: Algorithm,
        candidates: &[&'k VerifyingKey],
    ) -> Result<&'k VerifyingKey, VerifyError> {
        candidates
            .iter()
            .find(|key| {
                key.fits(alg)
                    && jsonwebtoken::crypto::verify(
                        self.signature,
                        self.signing_input.as_bytes(),
                        &key.key,
                        alg,
                    )
                    .unwrap_or(false)
            })
            .copied()
            .ok_or(VerifyError::BadSignature)
    }

    /// Length of the decoded payload, to size cache entries.
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// The claim set. Call only after [`Jws::verify`] succeeded.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Malformed`] when the payload is not a JSON object.
    pub fn claims(&self) -> Result<Map<String, Value>, VerifyError> {
        serde_json::from_slice(&self.payload)
            .map_err(|_| VerifyError::Malformed("payload is not a JSON object"))
    }
}

/// Strict base64url: no padding, no other alphabet, no whitespace, zero trailing bits.
fn decode(segment: &str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| VerifyError::Malformed("segment is not canonical base64url"))
}
