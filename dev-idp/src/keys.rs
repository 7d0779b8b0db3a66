//! Signing keys: generation, raw signatures and the public JWK of each key.
//!
//! This module knows the three algorithms the IdP offers and how each one looks on the wire
//! (RFC 7518 §3 for signatures, §6 for JWKs, RFC 8037 for Ed25519). Which keys are published
//! and which one signs is decided by the shared state in `state.rs`.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A signing algorithm and the kind of key that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// RSA-2048 with RSASSA-PKCS1-v1_5 and SHA-256 (JWS `alg` `RS256`).
    Rs256,
    /// ECDSA on P-256 with SHA-256 (JWS `alg` `ES256`).
    Es256,
    /// Ed25519 (JWS `alg` `EdDSA`, JWK `crv` `Ed25519`).
    EdDsa,
}

impl KeyAlg {
    /// The JWS `alg` name: `RS256`, `ES256` or `EdDSA`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
            KeyAlg::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlg {
    type Err = UnknownAlg;

    /// Parses a JWS `alg` name; the match ignores ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa]
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownAlg(name.to_owned()))
    }
}

/// An algorithm name that is not one of `RS256`, `ES256` or `EdDSA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlg(pub String);

impl fmt::Display for UnknownAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown algorithm {:?} (expected RS256, ES256 or EdDSA)",
            self.0
        )
    }
}

impl std::error::Error for UnknownAlg {}

/// A private key with its kid. Its `Debug` shows only the kid and algorithm.
pub(crate) struct Key {
    kid: String,
    pair: Pair,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Key {
    /// Generates a fresh key for `alg`.
    ///
    /// # Panics
    ///
    /// If aws-lc cannot generate a key, which only happens when the system has no randomness.
    pub(crate) fn generate(kid: String, alg: KeyAlg) -> Key {
        const FAILED: &str = "aws-lc key generation failed";
        let pair = match alg {
            KeyAlg::Rs256 => Pair::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect(FAILED)),
            KeyAlg::Es256 => {
                Pair::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect(FAILED))
            }
            KeyAlg::EdDsa => Pair::Ed(Ed25519KeyPair::generate().expect(FAILED)),
        };
        Key { kid, pair }
    }

    /// The key id, as published in the JWKS.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub(crate) fn alg(&self) -> KeyAlg {
        match self.pair {
            Pair::Rsa(_) => KeyAlg::Rs256,
            Pair::Ec(_) => KeyAlg::Es256,
            Pair::Ed(_) => KeyAlg::EdDsa,
        }
    }

    /// Signs `message` in the form JWS needs (RFC 7518 §3.3, §3.4; RFC 8037 §3.1).
    ///
    /// # Panics
    ///
    /// If aws-lc fails to sign with a key it generated itself.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        const FAILED: &str = "aws-lc signing with a generated key failed";
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .expect(FAILED);
                signature
            }
            // The FIXED algorithm gives r || s, 32 bytes each, as RFC 7518 §3.4 requires.
            Pair::Ec(pair) => pair
                .sign(&SystemRandom::new(), message)
                .expect(FAILED)
                .as_ref()
                .to_vec(),
            Pair::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    /// The public key as a JWK with `kid`, `use` and `alg`.
    pub(crate) fn jwk(&self) -> Value {
        let mut jwk = match &self.pair {
            Pair::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Pair::Ec(pair) => {
                // SEC 1 uncompressed point: 0x04 || x || y, each coordinate full length
                // as RFC 7518 §6.2.1.2 requires.
                let point = pair.public_key().as_ref();
                let (x, y) = point[1..].split_at(32);
                json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) })
            }
            Pair::Ed(pair) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) })
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.alg().as_str());
        jwk
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .finish_non_exhaustive()
    }
}

/// Base64url without padding, as JOSE uses everywhere (RFC 7515 §2).
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_names_round_trip() {
        for alg in [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa] {
            assert_eq!(alg.as_str().parse::<KeyAlg>(), Ok(alg));
        }
        assert_eq!("eddsa".parse::<KeyAlg>(), Ok(KeyAlg::EdDsa));
        assert_eq!("HS256".parse::<KeyAlg>(), Err(UnknownAlg("HS256".into())));
    }

    #[test]
    fn jwk_members_match_the_algorithm() {
        let rsa = Key::generate("r".into(), KeyAlg::Rs256).jwk();
        let ec = Key::generate("e".into(), KeyAlg::Es256).jwk();
        let ed = Key::generate("d".into(), KeyAlg::EdDsa).jwk();

        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(rsa["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
        assert_eq!(ec["crv"], "P-256");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(ec["y"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(ed["kty"], "OKP");
        assert_eq!(ed["alg"], "EdDSA");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(ed["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn es256_signatures_are_fixed_size() {
        let key = Key::generate("e".into(), KeyAlg::Es256);

        assert_eq!(key.sign(b"message").len(), 64);
    }
}
