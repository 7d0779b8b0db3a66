//! Traces: one `check` span per Check that continues the caller's W3C trace, and one
//! `jwks_refresh` span per key fetch, exported through the real OpenTelemetry layer into
//! the SDK's in-memory exporter. A binary of its own, since it installs a subscriber.

mod support;

use dev_idp::DevIdp;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::{TestServer, config, get, valid_token};
use tracing_subscriber::layer::SubscriberExt;

fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn check_span_continues_the_callers_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(tollgate::telemetry::trace_layer(&provider));
    let _guard = tracing::subscriber::set_default(subscriber);
    let idp = DevIdp::start().await.unwrap();
    let server = TestServer::start(&config(&idp)).await;
    let token = valid_token(&idp);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    server
        .check(
            get("/orders")
                .bearer(&token)
                .header("traceparent", traceparent)
                .request_id("r-1"),
        )
        .await;
    server.check(get("/orders")).await;
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let checks: Vec<_> = spans.iter().filter(|s| s.name == "check").collect();
    assert_eq!(checks.len(), 2);
    let allowed = checks[0];
    assert_eq!(
        allowed.span_context.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        allowed.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    assert_eq!(attribute(allowed, "correlation_id").as_deref(), Some("r-1"));
    assert_eq!(attribute(allowed, "policy").as_deref(), Some("orders"));
    assert_eq!(attribute(allowed, "decision").as_deref(), Some("allow"));
    let denied = checks[1];
    assert_ne!(
        denied.span_context.trace_id(),
        allowed.span_context.trace_id()
    );
    assert_eq!(
        attribute(denied, "reason").as_deref(),
        Some("token_missing")
    );
    assert!(
        spans.iter().any(|s| s.name == "jwks_refresh"),
        "a key fetch is traced"
    );
    let text = format!("{spans:?}");
    assert!(!text.contains(&token), "a token never reaches a span");
}
