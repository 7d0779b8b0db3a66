//! The outcome of a Check: allow with headers, or deny with a reason.
//!
//! Every request-path error becomes exactly one [`DenyReason`]; the reason fixes the
//! HTTP status, the RFC 6750 challenge and the description, and its
//! [`DenyReason::as_str`] code is what logs and metrics use. [`crate::service`] turns a
//! [`Decision`] into Envoy's `CheckResponse`.

use std::fmt::Write;

/// Why a request was denied: a stable code for logs, metrics and troubleshooting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No credential of the policy's kind in the request.
    TokenMissing,
    /// A credential that is not a well-formed bearer credential.
    CredentialsMalformed,
    /// More than one credential.
    MultipleCredentials,
    /// The token exceeds the size limit.
    TokenTooLarge,
    /// Not a compact JWS, or not strictly encoded.
    TokenMalformed,
    /// `typ` is not a JWT access token type.
    TokenTypeNotAccepted,
    /// The header has `crit` extensions.
    CritUnsupported,
    /// `alg` is `none`, HMAC, or not allowed for the provider.
    AlgorithmNotAllowed,
    /// The token's `kid` is not in the provider's key set, even after a refetch.
    UnknownKid,
    /// The named key cannot verify this token (encryption key, other algorithm).
    KeyUnusable,
    /// A token without `kid` and no key fits its algorithm.
    NoUsableKey,
    /// The signature does not verify.
    SignatureInvalid,
    /// A claim has the wrong shape.
    ClaimMalformed,
    /// `iss` is not the provider's issuer.
    IssuerMismatch,
    /// No accepted audience in `aud`.
    AudienceNotAccepted,
    /// `exp` has passed.
    TokenExpired,
    /// No `exp`.
    ExpirationMissing,
    /// `nbf` or `iat` in the future.
    TokenNotYetValid,
    /// Required scopes are missing.
    InsufficientScope,
    /// Another claim requirement is not met.
    ClaimMismatch,
    /// No policy and no route covers the request.
    NoPolicy,
    /// Envoy named a policy the config does not define.
    UnknownPolicy,
    /// The provider's keys are not loaded (or too stale to use).
    KeysUnavailable,
    /// A bug: the Check failed unexpectedly.
    Internal,
}

/// How a deny is answered, which follows from its reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 401 with a challenge but no error code (RFC 6750 §3.1).
    NoCredentials,
    /// 400 `invalid_request`.
    InvalidRequest,
    /// 401 `invalid_token`.
    InvalidToken,
    /// 403 `insufficient_scope`.
    InsufficientScope,
    /// 403 without a challenge: nothing the client can present would help.
    Forbidden,
    /// 503 with `Retry-After`: tollgate cannot decide right now.
    Unavailable,
    /// 500: tollgate is misconfigured or failed.
    Internal,
}

impl DenyReason {
    /// The stable `snake_case` code.
    pub fn as_str(self) -> &'static str {
        use DenyReason::*;
        match self {
            TokenMissing => "token_missing",
            CredentialsMalformed => "credentials_malformed",
            MultipleCredentials => "multiple_credentials",
            TokenTooLarge => "token_too_large",
            TokenMalformed => "token_malformed",
            TokenTypeNotAccepted => "token_type_not_accepted",
            CritUnsupported => "crit_unsupported",
            AlgorithmNotAllowed => "algorithm_not_allowed",
            UnknownKid => "unknown_kid",
            KeyUnusable => "key_unusable",
            NoUsableKey => "no_usable_key",
            SignatureInvalid => "signature_invalid",
            ClaimMalformed => "claim_malformed",
            IssuerMismatch => "issuer_mismatch",
            AudienceNotAccepted => "audience_not_accepted",
            TokenExpired => "token_expired",
            ExpirationMissing => "expiration_missing",
            TokenNotYetValid => "token_not_yet_valid",
            InsufficientScope => "insufficient_scope",
            ClaimMismatch => "claim_mismatch",
            NoPolicy => "no_policy",
            UnknownPolicy => "unknown_policy",
            KeysUnavailable => "keys_unavailable",
            Internal => "internal_error",
        }
    }

    /// How this reason is answered.
    pub fn class(self) -> Class {
        use DenyReason::*;
        match self {
            TokenMissing => Class::NoCredentials,
            CredentialsMalformed | MultipleCredentials => Class::InvalidRequest,
            TokenTooLarge | TokenMalformed | TokenTypeNotAccepted | CritUnsupported
            | AlgorithmNotAllowed | UnknownKid | KeyUnusable | NoUsableKey | SignatureInvalid
            | ClaimMalformed | IssuerMismatch | AudienceNotAccepted | TokenExpired
            | ExpirationMissing | TokenNotYetValid => Class::InvalidToken,
            InsufficientScope | ClaimMismatch => Class::InsufficientScope,
            NoPolicy => Class::Forbidden,
            KeysUnavailable => Class::Unavailable,
            UnknownPolicy | Internal => Class::Internal,
        }
    }

    /// A short description for `error_description`: names the failed check, never a
    /// token, key or claim value.
    pub fn description(self) -> &'static str {
        use DenyReason::*;
        match self {
            TokenMissing => "no bearer token in the request",
            CredentialsMalformed => "malformed authorization credentials",
            MultipleCredentials => "more than one credential in the request",
            TokenTooLarge => "token too large",
            TokenMalformed => "token is not a well-formed JWS",
            TokenTypeNotAccepted => "token type not accepted",
            CritUnsupported => "token uses unsupported critical header extensions",
            AlgorithmNotAllowed => "signature algorithm not allowed",
            UnknownKid => "signing key not found",
            KeyUnusable => "signing key cannot verify this token",
            NoUsableKey => "no signing key fits this token",
            SignatureInvalid => "signature does not verify",
            ClaimMalformed => "token has a malformed claim",
            IssuerMismatch => "issuer not accepted",
            AudienceNotAccepted => "audience not accepted",
            TokenExpired => "token expired",
            ExpirationMissing => "token has no expiration time",
            TokenNotYetValid => "token not yet valid",
            InsufficientScope => "token lacks a required scope",
            ClaimMismatch => "token lacks a required claim value",
            NoPolicy => "no policy covers this request",
            UnknownPolicy => "the route names an unknown policy",
            KeysUnavailable => "token keys are not available yet; try again",
            Internal => "internal error",
        }
    }
}

/// A decision to deny, with what the answer needs beyond the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deny {
    /// Why.
    pub reason: DenyReason,
    /// `realm` of the challenge; `None` when no policy applies.
    pub realm: Option<String>,
    /// The scopes the policy requires, for an `insufficient_scope` challenge.
    pub scope: Option<String>,
    /// The policy's status override for 401 and 403.
    pub status_override: Option<u16>,
    /// The policy's `error_description` override for the body.
    pub message_override: Option<String>,
}

impl Deny {
    /// A deny with only a reason.
    pub fn new(reason: DenyReason) -> Self {
        Self {
            reason,
            realm: None,
            scope: None,
            status_override: None,
            message_override: None,
        }
    }

    /// The HTTP status the client sees.
    pub fn status(&self) -> u16 {
        let base = match self.reason.class() {
            Class::NoCredentials | Class::InvalidToken => 401,
            Class::InvalidRequest => 400,
            Class::InsufficientScope | Class::Forbidden => 403,
            Class::Unavailable => 503,
            Class::Internal => 500,
        };
        match self.status_override {
            Some(status) if base == 401 || base == 403 => status,
            _ => base,
        }
    }

    /// The RFC 6750 `error` code, when the answer has one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.reason.class() {
            Class::NoCredentials | Class::Unavailable => None,
            Class::InvalidRequest => Some("invalid_request"),
            Class::InvalidToken => Some("invalid_token"),
            Class::InsufficientScope => Some("insufficient_scope"),
            Class::Forbidden => Some("access_denied"),
            Class::Internal => Some("server_error"),
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), when the answer carries one.
    pub fn challenge(&self) -> Option<String> {
        let class = self.reason.class();
        if matches!(
            class,
            Class::Forbidden | Class::Unavailable | Class::Internal
        ) {
            return None;
        }
        let mut challenge = String::from("Bearer");
        let mut sep = " ";
        let mut param = |name: &str, value: &str| {
            let _ = write!(challenge, "{sep}{name}=\"{}\"", quote(value));
            sep = ", ";
        };
        if let Some(realm) = &self.realm {
            param("realm", realm);
        }
        if let Some(code) = self.error_code() {
            param("error", code);
            param("error_description", self.reason.description());
        }
        if class == Class::InsufficientScope
            && let Some(scope) = &self.scope
        {
            param("scope", scope);
        }
        Some(challenge)
    }

    /// The JSON body.
    pub fn body(&self, correlation_id: &str) -> String {
        let description = self
            .message_override
            .as_deref()
            .unwrap_or(self.reason.description());
        serde_json::json!({
            "error": self.error_code().unwrap_or("unauthorized"),
            "error_description": description,
            "correlation_id": correlation_id,
        })
        .to_string()
    }
}

/// Headers an allow sends upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    /// Headers to set upstream, overwriting the client's.
    pub set: Vec<(String, String)>,
    /// Headers to remove upstream.
    pub remove: Vec<String>,
}

/// The outcome of a Check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow(Allow),
    /// Refuse it.
    Deny(Deny),
}

/// Escapes a quoted-string value (RFC 9110 §5.6.4).
fn quote(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| {
            let escape = (c == '"' || c == '\\').then_some('\\');
            escape.into_iter().chain(std::iter::once(c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny(reason: DenyReason) -> Deny {
        Deny {
            realm: Some("orders".into()),
            ..Deny::new(reason)
        }
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(
            deny(DenyReason::TokenMissing).challenge().unwrap(),
            r#"Bearer realm="orders""#
        );
        assert_eq!(
            deny(DenyReason::TokenExpired).challenge().unwrap(),
            r#"Bearer realm="orders", error="invalid_token", error_description="token expired""#
        );
        let scope = Deny {
            scope: Some("a b".into()),
            ..deny(DenyReason::InsufficientScope)
        };
        assert_eq!(
            scope.challenge().unwrap(),
            concat!(
                r#"Bearer realm="orders", error="insufficient_scope", "#,
                r#"error_description="token lacks a required scope", scope="a b""#
            )
        );
        assert_eq!(deny(DenyReason::KeysUnavailable).challenge(), None);
    }

    #[test]
    fn statuses_by_class_and_override() {
        let cases = [
            (DenyReason::TokenMissing, 401),
            (DenyReason::MultipleCredentials, 400),
            (DenyReason::SignatureInvalid, 401),
            (DenyReason::InsufficientScope, 403),
            (DenyReason::KeysUnavailable, 503),
            (DenyReason::Internal, 500),
        ];
        for (reason, status) in cases {
            assert_eq!(deny(reason).status(), status, "{reason:?}");
        }
        let overridden = |reason| Deny {
            status_override: Some(418),
            ..deny(reason)
        };
        assert_eq!(overridden(DenyReason::TokenExpired).status(), 418);
        assert_eq!(overridden(DenyReason::KeysUnavailable).status(), 503);
    }

    #[test]
    fn quoted_values_are_escaped() {
        assert_eq!(quote("a\"b\\c\r\n"), "a\\\"b\\\\c");
    }
}
