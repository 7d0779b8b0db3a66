//! The HTTP side: routes, the discovery document, the JWKS and the admin endpoints.
//!
//! Discovery and JWKS consult the current [`Fault`](crate::Fault); the token endpoint lives
//! in `grant.rs` and is never faulted. Every handler answers; none panics on request input.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::keys::KeyAlg;
use crate::state::{Knobs, Shared};
use crate::{fault, grant};

/// Path of the OpenID Connect discovery document (OpenID Connect Discovery 1.0 §4).
pub(crate) const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Path of the JWK Set.
pub(crate) const JWKS_PATH: &str = "/jwks";
/// Path of the OAuth2 token endpoint.
pub(crate) const TOKEN_PATH: &str = "/token";

/// All routes of the IdP.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(DISCOVERY_PATH, get(discovery))
        .route(JWKS_PATH, get(jwks))
        .route(TOKEN_PATH, post(grant::token))
        .route("/admin/rotate", post(rotate))
        .route("/admin/retire", post(retire))
        .with_state(shared)
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    Shared::count(&shared.discovery_fetches);
    let (fault, document) = {
        let knobs = shared.knobs();
        (knobs.fault, discovery_document(&shared, &knobs))
    };

    fault::answer(fault, document, shared.shutdown.clone()).await
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    Shared::count(&shared.jwks_fetches);
    let (fault, cache_control, document) = {
        let knobs = shared.knobs();
        (knobs.fault, knobs.cache_control.clone(), knobs.ring.jwks())
    };

    let mut response = fault::answer(fault, document, shared.shutdown.clone()).await;
    // `DevIdp::set_cache_control` checked the value, so a failure here cannot happen.
    if let Some(value) = cache_control.and_then(|value| HeaderValue::from_str(&value).ok()) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// The discovery document, with the test overrides of `issuer` and `jwks_uri` applied.
fn discovery_document(shared: &Shared, knobs: &Knobs) -> Value {
    let base = shared.base_url();
    let issuer = knobs
        .discovery_issuer
        .clone()
        .unwrap_or_else(|| shared.issuer.clone());
    let jwks_uri = knobs
        .jwks_uri
        .clone()
        .unwrap_or_else(|| format!("{base}{JWKS_PATH}"));
    let scopes: BTreeSet<&str> = shared
        .clients
        .iter()
        .flat_map(|client| client.scopes.iter().map(String::as_str))
        .collect();
    let algs = [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa].map(KeyAlg::as_str);

    json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
    })
}

#[derive(Deserialize)]
struct RotateQuery {
    alg: Option<String>,
}

/// `POST /admin/rotate?alg=ES256`: a new key that signs from now on (RS256 by default).
async fn rotate(State(shared): State<Arc<Shared>>, query: Query<RotateQuery>) -> Response {
    let alg = match query.alg.as_deref().map(str::parse::<KeyAlg>) {
        None => KeyAlg::Rs256,
        Some(Ok(alg)) => alg,
        Some(Err(unknown)) => return admin_error(StatusCode::BAD_REQUEST, &unknown.to_string()),
    };

    let kid = shared.rotate(alg);
    Json(json!({ "kid": kid, "alg": alg.as_str() })).into_response()
}

#[derive(Deserialize)]
struct RetireQuery {
    kid: String,
}

/// `POST /admin/retire?kid=k1`: unpublish a key; 404 when nothing with that kid is published.
async fn retire(State(shared): State<Arc<Shared>>, query: Query<RetireQuery>) -> Response {
    if !shared.knobs().ring.retire(&query.kid) {
        return admin_error(StatusCode::NOT_FOUND, "no published key with this kid");
    }
    Json(json!({ "retired": query.kid })).into_response()
}

fn admin_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
