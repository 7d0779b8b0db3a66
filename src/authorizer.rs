//! The Check pipeline: policy, token, keys, signature, claims, decision.
//!
//! [`Authorizer::check`] is the whole request path. It does no network I/O: keys come
//! from the providers' snapshots, and the only wait is for a shared early refetch when
//! a token names an unknown `kid`, bounded by the configured budget.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::UnixTime;
use crate::config::Config;
use crate::correlation::CorrelationId;
use crate::decision::{Allow, Decision, Deny, DenyReason};
use crate::jwks::{Candidates, KeyStore, ProviderKeys};
use crate::policy::requirement::{RequirementError, Scalars, claim_values};
use crate::policy::{Access, PolicyName, Provider, SelectError, Selection, TokenPolicy};
use crate::request::HttpRequestView;
use crate::token::{self, TokenError, TokenSource};
use crate::token_cache::{TokenCache, VerifiedToken};
use crate::verify::{self, ClaimError, Jws, VerifyError};

/// Longest value of one forwarded claim header.
pub const MAX_CLAIM_HEADER_BYTES: usize = 4096;

/// Answers Check calls from a config and the providers' keys.
#[derive(Debug)]
pub struct Authorizer {
    config: Arc<Config>,
    keys: Arc<KeyStore>,
    cache: TokenCache,
}

/// A decision and what the logs, metrics and metadata need to explain it.
#[derive(Debug)]
pub struct Outcome {
    /// Allow or deny.
    pub decision: Decision,
    /// The request's correlation id.
    pub correlation_id: CorrelationId,
    /// The policy applied, when one was selected.
    pub policy: Option<PolicyName>,
    /// How it was selected.
    pub selection: Option<Selection>,
    /// The token's `kid`, when it got that far.
    pub kid: Option<String>,
    /// Safe detail of a deny for the log line: claim names, `iss`, algorithm; never a
    /// token or key.
    pub detail: Option<String>,
    /// `iss` and `sub` of an accepted token, for Envoy's dynamic metadata.
    pub subject: Option<(String, String)>,
}

/// The part of a Check that stops at the first failure.
struct Failure {
    reason: DenyReason,
    detail: Option<String>,
}

impl Failure {
    fn new(reason: DenyReason, detail: impl ToString) -> Self {
        Self {
            reason,
            detail: Some(detail.to_string()),
        }
    }
}

impl Authorizer {
    /// An authorizer over a checked config and the key store built from it.
    pub fn new(config: Arc<Config>, keys: Arc<KeyStore>) -> Self {
        let cache = TokenCache::new(config.token_cache_bytes);
        Self {
            config,
            keys,
            cache,
        }
    }

    /// The config in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The providers' keys.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// The verified-token cache.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// Decides one Check request.
    pub async fn check(
        &self,
        request: HttpRequestView<'_>,
        named: Option<&str>,
        now: UnixTime,
    ) -> Outcome {
        let correlation_id = CorrelationId::for_request(request, &self.config.correlation_header);
        let mut outcome = Outcome {
            decision: Decision::Deny(Deny::new(DenyReason::Internal)),
            correlation_id,
            policy: None,
            selection: None,
            kid: None,
            detail: None,
            subject: None,
        };

        let (policy, selection) = match self.config.policies.select(named, &request.line()) {
            Ok(found) => found,
            Err(error) => {
                let reason = match error {
                    SelectError::UnknownPolicy(_) => DenyReason::UnknownPolicy,
                    SelectError::NoMatch => DenyReason::NoPolicy,
                };
                outcome.detail = Some(error.to_string());
                outcome.decision = Decision::Deny(Deny::new(reason));
                return outcome;
            }
        };
        outcome.policy = Some(policy.name.clone());
        outcome.selection = Some(selection);

        let token_policy = match &policy.access {
            Access::Anonymous => {
                // Identity headers mean nothing on an anonymous route; never pass a
                // client's copy through.
                let remove = self.config.claim_headers.clone();
                outcome.decision = Decision::Allow(Allow {
                    set: Vec::new(),
                    remove,
                });
                return outcome;
            }
            Access::Token(token_policy) => token_policy,
        };

        outcome.decision = match self
            .authenticate(token_policy, request, now, &mut outcome)
            .await
        {
            Ok(verified) => {
                let sub = verified
                    .claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let issuer = self
                    .keys
                    .get(&token_policy.provider)
                    .map(|k| k.provider().issuer.clone());
                outcome.subject = Some((issuer.unwrap_or_default(), sub.to_owned()));
                Decision::Allow(self.allow(token_policy, &verified.claims))
            }
            Err(failure) => {
                outcome.detail = failure.detail;
                let scope = (failure.reason == DenyReason::InsufficientScope)
                    .then(|| token_policy.scopes.as_ref().map(|s| s.values().join(" ")))
                    .flatten();
                Decision::Deny(Deny {
                    reason: failure.reason,
                    realm: Some(token_policy.realm.clone()),
                    scope,
                    status_override: token_policy.failure_status,
                    message_override: token_policy.failure_message.clone(),
                })
            }
        };
        outcome
    }

    /// Finds and verifies the token, from the cache when it was verified before, then
    /// checks the policy's requirements.
    async fn authenticate(
        &self,
        policy: &TokenPolicy,
        request: HttpRequestView<'_>,
        now: UnixTime,
        outcome: &mut Outcome,
    ) -> Result<Arc<VerifiedToken>, Failure> {
        let token = token::extract(&policy.sources, request, self.config.max_token_bytes)
            .map_err(token_failure)?;
        let keys = self.keys.get(&policy.provider).ok_or_else(|| {
            let detail = format!("provider {} has no key store", policy.provider);
            Failure::new(DenyReason::Internal, detail)
        })?;
        let provider = keys.provider();

        // Only tokens that passed strict decoding are ever inserted, so looking up the raw
        // text is safe: a variant spelling of a cached token simply misses.
        // With the cache off, the digest (SHA-256 over the token) is not worth computing.
        let digest = self
            .cache
            .enabled()
            .then(|| TokenCache::digest(&provider.name, token.as_str()));
        if let Some(hit) = digest.as_ref().and_then(|digest| self.cache.get(digest)) {
            outcome.kid = hit.kid.clone();
            let key_set = keys.current().ok_or_else(|| unavailable(provider))?;
            if key_set.has_fingerprint(hit.key_fingerprint) {
                let issuer = provider.issuer_for(&hit.claims);
                verify::registered(&hit.claims, issuer, now, provider.clock_skew)
                    .map_err(claim_failure)?;
                check_policy(policy, &hit.claims)?;
                return Ok(hit);
            }
            // The key that verified it left the set: verify again, which now fails.
            if let Some(digest) = &digest {
                self.cache.remove(digest);
            }
        }

        let verified = self.verify(token.as_str(), keys, now, outcome).await?;
        if let Some(digest) = digest {
            self.cache.insert(digest, verified.clone());
        }
        check_policy(policy, &verified.claims)?;
        Ok(verified)
    }

    /// The full verification of a token not in the cache: form, algorithm, key,
    /// signature, issuer and time.
    async fn verify(
        &self,
        token: &str,
        keys: &ProviderKeys,
        now: UnixTime,
        outcome: &mut Outcome,
    ) -> Result<Arc<VerifiedToken>, Failure> {
        let provider = keys.provider();
        let jws = Jws::parse(token).map_err(verify_failure)?;
        outcome.kid = jws.kid().map(str::to_owned);
        let alg = jws
            .algorithm(&provider.algorithms)
            .map_err(verify_failure)?;

        let mut key_set = keys.current().ok_or_else(|| unavailable(provider))?;
        // Only a token that names a kid may trigger a refetch (BR-08): a kid-less token
        // would make every garbage token a request to the provider.
        if jws.kid().is_some()
            && matches!(key_set.candidates(jws.kid(), alg), Candidates::UnknownKid)
            && keys.refetch(self.config.check_budget).await
        {
            key_set = keys.current().ok_or_else(|| unavailable(provider))?;
        }
        let candidates = match key_set.candidates(jws.kid(), alg) {
            Candidates::Keys(keys) => keys,
            Candidates::UnknownKid => {
                let detail = format!("provider {}", provider.name);
                return Err(Failure::new(DenyReason::UnknownKid, detail));
            }
            Candidates::KeyUnusable => {
                return Err(Failure::new(
                    DenyReason::KeyUnusable,
                    format!("alg {alg:?}"),
                ));
            }
            Candidates::NoneFits => {
                return Err(Failure::new(
                    DenyReason::NoUsableKey,
                    format!("alg {alg:?}"),
                ));
            }
        };
        let key = jws.verify(alg, &candidates).map_err(verify_failure)?;

        let claims = jws.claims().map_err(verify_failure)?;
        let issuer = provider.issuer_for(&claims);
        let exp =
            verify::registered(&claims, issuer, now, provider.clock_skew).map_err(claim_failure)?;
        let ttl = exp
            .map(|exp| exp + provider.clock_skew.as_secs_f64() - now as f64)
            .filter(|left| *left > 0.0)
            .map_or(Duration::ZERO, Duration::from_secs_f64)
            .min(self.config.token_cache_ttl);
        Ok(Arc::new(VerifiedToken::new(
            claims,
            jws.kid().map(str::to_owned),
            key.fingerprint,
            ttl,
            jws.payload_len(),
        )))
    }

    fn allow(&self, policy: &TokenPolicy, claims: &Map<String, Value>) -> Allow {
        let mut allow = Allow::default();
        for forward in &policy.forward_claims {
            match forward.claim.lookup(claims).and_then(header_value) {
                Some(value) => allow.set.push((forward.header.clone(), value)),
                None => allow.remove.push(forward.header.clone()),
            }
        }
        // Claim headers of other policies mean nothing on this route, but the upstream may
        // still read them: a client's copy must not get through (as on anonymous routes).
        for header in &self.config.claim_headers {
            let set = allow.set.iter().any(|(name, _)| name == header);
            if !set && !allow.remove.contains(header) {
                allow.remove.push(header.clone());
            }
        }
        if policy.strip_token {
            for source in &policy.sources {
                if let TokenSource::Header { name, .. } = source {
                    allow.remove.push(name.clone());
                }
            }
        }
        allow
    }
}

/// The policy's requirements on verified claims: audience, scopes, other claims.
fn check_policy(policy: &TokenPolicy, claims: &Map<String, Value>) -> Result<(), Failure> {
    verify::audience(claims, &policy.audiences).map_err(claim_failure)?;
    check_scopes(policy, claims)?;
    for requirement in &policy.claims {
        requirement.check(claims).map_err(|e| match e {
            RequirementError::Malformed(_) => Failure::new(DenyReason::ClaimMalformed, e),
            RequirementError::Missing(_) | RequirementError::Mismatch(_) => {
                Failure::new(DenyReason::ClaimMismatch, e)
            }
        })?;
    }
    Ok(())
}

fn unavailable(provider: &Provider) -> Failure {
    let detail = format!("provider {} has no usable keys", provider.name);
    Failure::new(DenyReason::KeysUnavailable, detail)
}

fn check_scopes(policy: &TokenPolicy, claims: &Map<String, Value>) -> Result<(), Failure> {
    let Some(required) = &policy.scopes else {
        return Ok(());
    };
    let Some((claim, value)) = policy
        .scope_claims
        .iter()
        .find_map(|c| Some((c, c.lookup(claims)?)))
    else {
        return Err(Failure::new(
            DenyReason::InsufficientScope,
            "token has no scope claim",
        ));
    };
    let held = claim_values(value, Some(" "), Scalars::Refuse).ok_or_else(|| {
        Failure::new(
            DenyReason::ClaimMalformed,
            format!("claim {claim} is malformed"),
        )
    })?;
    if required.is_met_by(&held) {
        Ok(())
    } else {
        Err(Failure::new(
            DenyReason::InsufficientScope,
            format!("claim {claim} lacks required scopes"),
        ))
    }
}

/// A claim as a header value: strings as they are, arrays of strings joined with `,`,
/// numbers and booleans as JSON text. Values with control characters, objects and
/// oversize values are not forwarded.
fn header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        Value::Array(items) => {
            let items: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            items?.join(",")
        }
        Value::Null | Value::Object(_) => return None,
    };
    let safe = !text.chars().any(char::is_control) && text.len() <= MAX_CLAIM_HEADER_BYTES;
    safe.then_some(text)
}

fn token_failure(error: TokenError) -> Failure {
    let reason = match error {
        TokenError::Missing => DenyReason::TokenMissing,
        TokenError::Malformed(_) => DenyReason::CredentialsMalformed,
        TokenError::Multiple => DenyReason::MultipleCredentials,
        TokenError::TooLarge { .. } => DenyReason::TokenTooLarge,
    };
    Failure::new(reason, error)
}

fn verify_failure(error: VerifyError) -> Failure {
    let reason = match error {
        VerifyError::Malformed(_) => DenyReason::TokenMalformed,
        VerifyError::TypeNotAccepted => DenyReason::TokenTypeNotAccepted,
        VerifyError::CritUnsupported => DenyReason::CritUnsupported,
        VerifyError::AlgorithmNotAllowed(_) => DenyReason::AlgorithmNotAllowed,
        VerifyError::BadSignature => DenyReason::SignatureInvalid,
    };
    Failure::new(reason, error)
}

fn claim_failure(error: ClaimError) -> Failure {
    let reason = match error {
        ClaimError::Malformed(_) => DenyReason::ClaimMalformed,
        ClaimError::IssuerMismatch { .. } => DenyReason::IssuerMismatch,
        ClaimError::ExpirationMissing => DenyReason::ExpirationMissing,
        ClaimError::Expired { .. } => DenyReason::TokenExpired,
        ClaimError::NotYetValid { .. } => DenyReason::TokenNotYetValid,
        ClaimError::AudienceNotAccepted => DenyReason::AudienceNotAccepted,
    };
    Failure::new(reason, error)
}
