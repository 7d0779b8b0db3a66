//! Faults the discovery and JWKS endpoints can be told to show, and the answers they give.
//!
//! Tests use them to check how a relying party copes with a broken or hostile IdP. Which
//! endpoints consult the fault is decided in `server.rs`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::watch;

/// How the discovery and JWKS endpoints misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer `503 Service Unavailable`.
    Down,
    /// Never answer; the request hangs until the [`DevIdp`](crate::DevIdp) is dropped.
    /// Other requests are served meanwhile.
    Stall,
    /// Answer 200 with a JSON content type and a body that is not JSON.
    Garbage,
    /// Answer 200 with a JSON content type and an empty body.
    Empty,
    /// Answer 200 with the normal document padded to about 5 MiB (still valid JSON).
    Huge,
}

/// Size of the [`Fault::Huge`] padding: a body just over 5 MiB.
const HUGE_PADDING: usize = 5 * 1024 * 1024;

/// Answers with `document`, or with whatever `fault` calls for instead.
pub(crate) async fn answer(
    fault: Fault,
    mut document: Value,
    mut shutdown: watch::Receiver<()>,
) -> Response {
    match fault {
        Fault::None => Json(document).into_response(),
        Fault::Down => (StatusCode::SERVICE_UNAVAILABLE, "dev-idp: fault Down\n").into_response(),
        Fault::Stall => {
            // The sender never sends; `changed` returns once the last handle drops it.
            let _ = shutdown.changed().await;
            (StatusCode::SERVICE_UNAVAILABLE, "dev-idp: shutting down\n").into_response()
        }
        Fault::Garbage => json_typed("<html>this is not JSON {\"keys\":[").into_response(),
        Fault::Empty => json_typed("").into_response(),
        Fault::Huge => {
            document["padding"] = Value::String("x".repeat(HUGE_PADDING));
            Json(document).into_response()
        }
    }
}

/// A 200 answer that claims to be JSON whatever the body is.
fn json_typed(body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], body)
}
