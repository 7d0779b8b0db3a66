//! The admin HTTP listener: `/healthz` (the process serves), `/readyz` (every provider
//! has keys) and `/metrics` (Prometheus text).
//!
//! Kubernetes probes and load balancers use these; they carry no secrets, only provider
//! names and the last fetch error.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::server::State as ServerState;

/// The admin routes over the server's state.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let text = crate::telemetry::metrics::metrics().render(state.authorizer.load().keys());
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

async fn readyz(State(state): State<Arc<ServerState>>) -> (StatusCode, String) {
    let authorizer = state.authorizer.load();
    let mut body = String::new();
    let mut ready = true;
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        ready = false;
        body.push_str("shutting down\n");
    }
    for keys in authorizer.keys().iter() {
        let name = &keys.provider().name;
        match keys.current() {
            Some(set) => body.push_str(&format!("{name}: ready ({} keys)\n", set.keys().len())),
            None => {
                ready = false;
                let error = keys.snapshot().last_error.clone();
                let error = error.as_deref().unwrap_or("first fetch not finished");
                body.push_str(&format!("{name}: not ready: {error}\n"));
            }
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}
