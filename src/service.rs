//! The gRPC face: Envoy's `Authorization/Check` in, `CheckResponse` out.
//!
//! Every Check completes as a normal gRPC reply whose `status` is OK,
//! PERMISSION_DENIED or UNAUTHENTICATED, never a transport error: recent Envoy
//! releases treat other codes as a failed call, which `failure_mode_allow` lets
//! through. A panic inside one Check becomes a 500 deny for that request only.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use futures_util::FutureExt;
use tracing::Instrument;
use tracing::field::Empty;

use crate::authorizer::{Authorizer, Outcome};
use crate::config::Config;
use crate::decision::{Decision, Deny, DenyReason};
use crate::policy::Access;
use crate::request::HttpRequestView;
use crate::telemetry::{self, metrics::metrics};

/// gRPC code OK.
const OK: i32 = 0;
/// gRPC code PERMISSION_DENIED.
const PERMISSION_DENIED: i32 = 7;
/// gRPC code UNAUTHENTICATED.
const UNAUTHENTICATED: i32 = 16;

/// The tonic `Authorization` service over the authorizer in force.
#[derive(Debug, Clone)]
pub struct CheckService {
    authorizer: Arc<ArcSwap<Authorizer>>,
}

impl CheckService {
    /// A service answering with whatever authorizer `authorizer` holds at each call, so
    /// a reload swaps it without touching in-flight Checks.
    pub fn new(authorizer: Arc<ArcSwap<Authorizer>>) -> Self {
        Self { authorizer }
    }

    /// Decides one Check and builds Envoy's answer; never fails.
    pub async fn decide(&self, request: &CheckRequest) -> CheckResponse {
        let started = std::time::Instant::now();
        let authorizer = self.authorizer.load_full();
        let view = HttpRequestView::new(request);
        let named = request
            .attributes
            .as_ref()
            .and_then(|a| a.context_extensions.get("policy"))
            .map(String::as_str);
        let span = tracing::info_span!(
            "check",
            otel.kind = "server",
            correlation_id = Empty,
            policy = Empty,
            decision = Empty,
            reason = Empty,
        );
        telemetry::continue_trace(&span, view);

        let outcome = AssertUnwindSafe(authorizer.check(view, named, crate::now()))
            .catch_unwind()
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| panicked());
        let (decision, reason) = match &outcome.decision {
            Decision::Allow(_) => ("allow", ""),
            Decision::Deny(deny) => ("deny", deny.reason.as_str()),
        };
        span.record("correlation_id", outcome.correlation_id.as_str());
        span.record("policy", outcome.policy.as_ref().map(|p| p.as_str()));
        span.record("decision", decision);
        if !reason.is_empty() {
            span.record("reason", reason);
        }
        span.in_scope(|| log(&outcome));

        let mut response = respond(&outcome, &authorizer.config().correlation_header);
        debug_reason(&mut response, &outcome, authorizer.config());
        metrics().record_check(decision, reason, started.elapsed());
        response
    }
}

/// The header that carries the reason code of a deny, for policies with
/// `debug_reason_header: true`.
pub const DEBUG_REASON_HEADER: &str = "x-tollgate-reason";

/// Adds the reason code to a deny when its policy asks for it. Off by default: the code
/// tells a client which check failed, which helps an attacker as much as a developer.
fn debug_reason(response: &mut CheckResponse, outcome: &Outcome, config: &Config) {
    let Decision::Deny(deny) = &outcome.decision else {
        return;
    };
    let policy = outcome
        .policy
        .as_ref()
        .and_then(|p| config.policies.get(p.as_str()));
    let wanted = policy
        .is_some_and(|p| matches!(&p.access, Access::Token(policy) if policy.debug_reason_header));
    if let (true, Some(HttpResponse::DeniedResponse(denied))) =
        (wanted, response.http_response.as_mut())
    {
        denied
            .headers
            .push(overwrite(DEBUG_REASON_HEADER, deny.reason.as_str()));
    }
}

fn panicked() -> Outcome {
    tracing::error!("check panicked; answering 500");
    Outcome {
        decision: Decision::Deny(Deny::new(DenyReason::Internal)),
        correlation_id: crate::correlation::CorrelationId::mint(),
        policy: None,
        selection: None,
        kid: None,
        detail: Some("panic".into()),
        subject: None,
    }
}

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.decide(request.get_ref()).await))
    }
}

fn log(outcome: &Outcome) {
    let policy = outcome.policy.as_ref().map(|p| p.as_str()).unwrap_or("");
    match &outcome.decision {
        Decision::Allow(_) => tracing::debug!(
            correlation_id = %outcome.correlation_id,
            policy,
            kid = outcome.kid.as_deref(),
            "request allowed",
        ),
        Decision::Deny(deny) => tracing::info!(
            correlation_id = %outcome.correlation_id,
            policy,
            kid = outcome.kid.as_deref(),
            reason = deny.reason.as_str(),
            status = deny.status(),
            detail = outcome.detail.as_deref(),
            "request denied",
        ),
    }
}

/// Builds Envoy's `CheckResponse` for an outcome.
pub fn respond(outcome: &Outcome, correlation_header: &str) -> CheckResponse {
    let id = outcome.correlation_id.as_str();
    let correlation = || overwrite(correlation_header, id);
    let (code, http_response) = match &outcome.decision {
        Decision::Allow(allow) => {
            let mut headers = vec![correlation()];
            headers.extend(allow.set.iter().map(|(name, value)| overwrite(name, value)));
            let ok = OkHttpResponse {
                headers,
                headers_to_remove: allow.remove.clone(),
                response_headers_to_add: vec![correlation()],
                ..Default::default()
            };
            (OK, HttpResponse::OkResponse(ok))
        }
        Decision::Deny(deny) => {
            let mut headers = vec![correlation(), overwrite("content-type", "application/json")];
            if let Some(challenge) = deny.challenge() {
                headers.push(overwrite("www-authenticate", &challenge));
            }
            if deny.reason == DenyReason::KeysUnavailable {
                headers.push(overwrite("retry-after", "5"));
            }
            let status = deny.status();
            let code = if matches!(status, 400 | 401) {
                UNAUTHENTICATED
            } else {
                PERMISSION_DENIED
            };
            let denied = DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: http_status(status),
                }),
                headers,
                body: deny.body(id),
            };
            (code, HttpResponse::DeniedResponse(denied))
        }
    };
    CheckResponse {
        status: Some(rpc::Status {
            code,
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(http_response),
        dynamic_metadata: Some(metadata(outcome)),
    }
}

/// Envoy's `dynamic_metadata` for access logs and later filters: decision, reason,
/// policy, correlation id, and the accepted token's `iss` and `sub`.
fn metadata(outcome: &Outcome) -> Struct {
    let mut fields = std::collections::HashMap::with_capacity(6);
    let mut put = |key: &str, value: &str| {
        fields.insert(
            key.to_owned(),
            Value {
                kind: Some(Kind::StringValue(value.to_owned())),
            },
        );
    };
    put("correlation_id", outcome.correlation_id.as_str());
    match &outcome.decision {
        Decision::Allow(_) => put("decision", "allow"),
        Decision::Deny(deny) => {
            put("decision", "deny");
            put("reason", deny.reason.as_str());
        }
    }
    if let Some(policy) = &outcome.policy {
        put("policy", policy.as_str());
    }
    if let Some((iss, sub)) = &outcome.subject {
        put("iss", iss);
        put("sub", sub);
    }
    Struct { fields }
}

fn overwrite(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: value.to_owned(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn http_status(status: u16) -> i32 {
    // Envoy's StatusCode enum uses the HTTP numbers themselves; an unknown number falls
    // back to 403 rather than a status Envoy cannot send.
    StatusCode::try_from(i32::from(status)).map_or(StatusCode::Forbidden as i32, |s| s as i32)
}
