//! The admin HTTP listener: `/healthz` (the process serves) and `/readyz` (every
//! provider has keys).
//!
//! Kubernetes probes and load balancers use these; they carry no secrets, only provider
//! names and the last fetch error.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::authorizer::Authorizer;

/// The admin routes over the authorizer in force.
pub fn router(authorizer: Arc<ArcSwap<Authorizer>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(authorizer)
}

async fn readyz(State(authorizer): State<Arc<ArcSwap<Authorizer>>>) -> (StatusCode, String) {
    let authorizer = authorizer.load();
    let mut body = String::new();
    let mut ready = true;
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
