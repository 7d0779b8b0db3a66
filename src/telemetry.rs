//! Logs, traces and metrics.
//!
//! Logs: a `tracing` subscriber, human-readable on a terminal and JSON otherwise, filtered
//! by `RUST_LOG` (default `info`). Traces: when an OTLP endpoint is configured through the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables
//! (and the other `OTEL_*` settings), spans go to it over gRPC: one `check` span per Check,
//! continuing the caller's W3C `traceparent`, and one `jwks_refresh` span per key fetch.
//! Metrics: [`metrics`]. Nothing logs or traces a token, a cookie, an `Authorization`
//! header or key material; see [`crate::token`].

pub mod metrics;

use std::io::IsTerminal;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::request::HttpRequestView;

/// Output format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human format on a terminal, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built from the `OTEL_*` settings.
    #[error("cannot build the OTLP trace exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// Installs the global subscriber: logs always, OTLP traces when an endpoint is set.
/// Call once, at start, inside the Tokio runtime.
///
/// # Errors
///
/// [`TelemetryError`] when an OTLP endpoint is set but the exporter cannot be built.
pub fn init(format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let json = match format {
        LogFormat::Auto => !std::io::stderr().is_terminal(),
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        logs.json().flatten_event(true).boxed()
    } else {
        logs.boxed()
    };

    let otlp_configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    let tracer_provider = if otlp_configured {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(TelemetryError::Exporter)?;
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .build(),
        )
    } else {
        None
    };
    let mut layers = vec![logs.with_filter(filter).boxed()];
    layers.extend(tracer_provider.as_ref().map(trace_layer));
    let _ = tracing_subscriber::registry().with(layers).try_init();
    if tracer_provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Ok(Telemetry { tracer_provider })
}

/// The layer that turns tollgate's spans into OpenTelemetry spans: the `check` and
/// `jwks_refresh` spans and their events at `info` and above.
pub fn trace_layer(provider: &SdkTracerProvider) -> Box<dyn Layer<Registry> + Send + Sync> {
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("tollgate"))
        .with_filter(EnvFilter::new("tollgate=info"))
        .boxed()
}

impl Telemetry {
    /// Flushes and stops the trace exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.tracer_provider {
            // The SDK's shutdown blocks until the last batch is sent.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

/// Makes `span` a child of the trace named by the request's W3C `traceparent`, if any.
pub fn continue_trace(span: &Span, request: HttpRequestView<'_>) {
    if span.is_disabled() || request.first("traceparent").is_none() {
        return;
    }
    let context = TraceContextPropagator::new().extract(&RequestHeaders(request));
    let _ = span.set_parent(context);
}

struct RequestHeaders<'a>(HttpRequestView<'a>);

impl Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.first(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}
