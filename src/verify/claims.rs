//! The registered claims of RFC 7519 §4.1: `iss`, `aud`, `exp`, `nbf` and `iat`.
//!
//! Time claims are NumericDates: any JSON number, fractions included; any other type is
//! malformed. `exp` is exclusive ("on or after" is expired). An `iat` in the future
//! beyond the clock skew is treated like an `nbf`, since a token cannot be issued later
//! than it is presented.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::UnixTime;

/// Why a registered claim was rejected. Names claims, never their values (but `iss`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClaimError {
    /// A claim has the wrong JSON type.
    #[error("claim {0} is malformed")]
    Malformed(&'static str),
    /// `iss` is missing or differs from the provider's issuer.
    #[error("issuer {found:?} is not the expected issuer")]
    IssuerMismatch {
        /// The token's `iss`, if it is a string.
        found: Option<String>,
    },
    /// The token has no `exp`.
    #[error("token has no exp")]
    ExpirationMissing,
    /// `exp` has passed.
    #[error("token expired at {exp} (now {now}, skew {skew:?})")]
    Expired {
        /// The token's `exp`.
        exp: f64,
        /// The validator's clock.
        now: UnixTime,
        /// The allowed skew.
        skew: Duration,
    },
    /// `nbf` (or `iat`) lies in the future.
    #[error("token not valid before {at} per {claim} (now {now}, skew {skew:?})")]
    NotYetValid {
        /// `nbf` or `iat`.
        claim: &'static str,
        /// Its value.
        at: f64,
        /// The validator's clock.
        now: UnixTime,
        /// The allowed skew.
        skew: Duration,
    },
    /// No accepted audience is in `aud`.
    #[error("audience not accepted")]
    AudienceNotAccepted,
}

/// Checks `iss`, `exp`, `nbf` and `iat`; returns `exp`.
///
/// # Errors
///
/// The first [`ClaimError`] found, in the order `iss`, `exp`, `nbf`, `iat`.
pub fn registered(
    claims: &Map<String, Value>,
    issuer: &str,
    now: UnixTime,
    skew: Duration,
) -> Result<Option<f64>, ClaimError> {
    let iss = claims.get("iss");
    if iss.and_then(Value::as_str) != Some(issuer) {
        let found = iss.and_then(Value::as_str).map(str::to_owned);
        return Err(ClaimError::IssuerMismatch { found });
    }

    let skew_s = skew.as_secs_f64();
    let now_f = now as f64;
    let exp = numeric_date(claims, "exp")?;
    match exp {
        None => return Err(ClaimError::ExpirationMissing),
        Some(exp) if now_f >= exp + skew_s => return Err(ClaimError::Expired { exp, now, skew }),
        Some(_) => {}
    }
    for claim in ["nbf", "iat"] {
        if let Some(at) = numeric_date(claims, claim)?
            && at > now_f + skew_s
        {
            return Err(ClaimError::NotYetValid {
                claim,
                at,
                now,
                skew,
            });
        }
    }
    Ok(exp)
}

/// Checks that `aud` (a string or an array of strings) holds one of `accepted`.
/// Comparison is exact and case-sensitive.
///
/// # Errors
///
/// [`ClaimError::Malformed`] for an `aud` of another shape, and
/// [`ClaimError::AudienceNotAccepted`] when none is accepted (or `aud` is absent).
pub fn audience(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), ClaimError> {
    let ok = match claims.get("aud") {
        None | Some(Value::Null) => false,
        Some(Value::String(aud)) => accepted.iter().any(|a| a == aud),
        Some(Value::Array(auds)) => {
            let mut hit = false;
            for aud in auds {
                let aud = aud.as_str().ok_or(ClaimError::Malformed("aud"))?;
                hit |= accepted.iter().any(|a| a == aud);
            }
            hit
        }
        Some(_) => return Err(ClaimError::Malformed("aud")),
    };
    if ok {
        Ok(())
    } else {
        Err(ClaimError::AudienceNotAccepted)
    }
}

fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(ClaimError::Malformed(name)),
        Some(_) => Err(ClaimError::Malformed(name)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T0: UnixTime = 1_700_000_000;
    const ISS: &str = "https://idp.example.test/realms/demo";

    fn check(claims: Value, skew: u64) -> Result<Option<f64>, ClaimError> {
        let mut claims = claims;
        claims["iss"] = json!(ISS);
        registered(
            claims.as_object().unwrap(),
            ISS,
            T0,
            Duration::from_secs(skew),
        )
    }

    fn kind(result: Result<Option<f64>, ClaimError>) -> &'static str {
        match result {
            Ok(_) => "allow",
            Err(ClaimError::Expired { .. }) => "expired",
            Err(ClaimError::NotYetValid { .. }) => "not yet valid",
            Err(ClaimError::ExpirationMissing) => "no exp",
            Err(ClaimError::Malformed(_)) => "malformed",
            Err(_) => "other",
        }
    }

    /// BR-22, and NumericDates of every JSON shape.
    #[test]
    fn time_claims_with_skew() {
        let cases = [
            (json!({"iat": T0 + 5, "exp": T0 + 3600}), 60, "allow"),
            (
                json!({"iat": T0 + 30, "nbf": T0 + 30, "exp": T0 + 3600}),
                60,
                "allow",
            ),
            (
                json!({"iat": T0, "nbf": T0 + 120, "exp": T0 + 3600}),
                60,
                "not yet valid",
            ),
            (json!({"iat": T0 - 3600, "exp": T0 - 30}), 60, "allow"),
            (json!({"iat": T0 - 3600, "exp": T0 - 61}), 60, "expired"),
            (
                json!({"iat": T0 + 86400, "exp": T0 + 90000}),
                60,
                "not yet valid",
            ),
            (json!({"iat": T0 - 60, "exp": T0}), 0, "expired"),
            (json!({"iat": T0}), 60, "no exp"),
            (json!({"exp": (T0 + 10) as f64 + 0.5}), 0, "allow"),
            (json!({"exp": "1700003600"}), 60, "malformed"),
            (json!({"exp": null}), 60, "malformed"),
            (json!({"exp": 1e300}), 60, "allow"),
            (json!({"exp": -5}), 60, "expired"),
            (json!({"exp": T0 + 60, "nbf": "soon"}), 60, "malformed"),
            (json!({"exp": T0 + 60, "iat": [1]}), 60, "malformed"),
        ];
        for (claims, skew, expected) in cases {
            assert_eq!(kind(check(claims.clone(), skew)), expected, "{claims}");
        }
    }

    #[test]
    fn issuer_is_compared_exactly() {
        let claims = |iss: Value| json!({"iss": iss, "exp": T0 + 60});
        for iss in [
            json!(format!("{ISS}/")),
            json!("HTTPS://idp.example.test/realms/demo"),
            json!(null),
            json!(7),
        ] {
            let claims = claims(iss);
            let got = registered(claims.as_object().unwrap(), ISS, T0, Duration::ZERO);
            assert!(
                matches!(got, Err(ClaimError::IssuerMismatch { .. })),
                "{claims}"
            );
        }
    }

    /// BR-01: every shape `aud` comes in.
    #[test]
    fn audience_shapes() {
        let accepted = ["api://orders".to_string()];
        let cases = [
            (json!("api://orders"), Ok(())),
            (json!(["api://billing", "api://orders"]), Ok(())),
            (
                json!(["api://billing"]),
                Err(ClaimError::AudienceNotAccepted),
            ),
            (json!([]), Err(ClaimError::AudienceNotAccepted)),
            (json!(null), Err(ClaimError::AudienceNotAccepted)),
            (
                json!([123, "api://orders"]),
                Err(ClaimError::Malformed("aud")),
            ),
            (json!("API://ORDERS"), Err(ClaimError::AudienceNotAccepted)),
            (json!({"a": 1}), Err(ClaimError::Malformed("aud"))),
        ];
        for (aud, expected) in cases {
            let claims = json!({ "aud": aud });
            assert_eq!(
                audience(claims.as_object().unwrap(), &accepted),
                expected,
                "{aud}"
            );
        }
        assert_eq!(
            audience(&Map::new(), &accepted),
            Err(ClaimError::AudienceNotAccepted)
        );
    }
}
