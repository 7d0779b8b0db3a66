//! The token endpoint: the OAuth2 `client_credentials` grant (RFC 6749 §4.4).
//!
//! Clients authenticate with HTTP Basic or with `client_id` and `client_secret` in the form
//! (RFC 6749 §2.3.1). Errors are the JSON answers of RFC 6749 §5.2. Signing is left to
//! `token.rs`, the client list to `options.rs`.

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::options::Client;
use crate::state::Shared;
use crate::token;

/// The form fields of a token request; unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    audience: Option<String>,
}

/// Why a token request was refused, one variant per RFC 6749 §5.2 error code used here.
#[derive(Debug, PartialEq, Eq)]
enum GrantError {
    InvalidRequest(&'static str),
    InvalidClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707 §2: the requested audience is not one this client may ask for.
    InvalidTarget,
}

/// `POST /token`.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let Ok(Form(request)) = form else {
        return GrantError::InvalidRequest("body must be a valid form").into_response();
    };
    match issue(&shared, &headers, &request) {
        Ok(answer) => answer,
        Err(error) => error.into_response(),
    }
}

fn issue(
    shared: &Shared,
    headers: &HeaderMap,
    request: &TokenRequest,
) -> Result<Response, GrantError> {
    match request.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => return Err(GrantError::UnsupportedGrantType),
        None => return Err(GrantError::InvalidRequest("grant_type is missing")),
    }
    let client = authenticate(&shared.clients, headers, request)?;
    let scopes = granted_scopes(client, request.scope.as_deref())?;
    let audience = granted_audience(client, request.audience.as_deref())?;

    let now = token::now();
    let lifetime = shared.token_lifetime.as_secs();
    let mut claims = json!({
        "iss": shared.issuer,
        "sub": client.id,
        "scope": scopes.join(" "),
        "client_id": client.id,
        "azp": client.id,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": token::random_jti(),
    });
    if let Some(audience) = audience {
        claims["aud"] = Value::String(audience.to_owned());
    }

    let key = shared.knobs().ring.signing();
    let access_token = token::encode(&key, &token::header_for(&key), &claims);
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": scopes.join(" "),
    });
    // RFC 6749 §5.1: token answers must not be cached.
    let no_cache = [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ];
    Ok((no_cache, Json(body)).into_response())
}

/// Finds the client the request authenticates as.
fn authenticate<'c>(
    clients: &'c [Client],
    headers: &HeaderMap,
    request: &TokenRequest,
) -> Result<&'c Client, GrantError> {
    let (id, secret) = credentials(headers, request)?;
    let client = clients.iter().find(|client| client.id == id);
    let client = client.ok_or(GrantError::InvalidClient)?;
    verify_slices_are_equal(client.secret.as_bytes(), secret.as_bytes())
        .map_err(|_| GrantError::InvalidClient)?;
    Ok(client)
}

/// The `(id, secret)` the request presents, by Basic or in the form (RFC 6749 §2.3.1).
fn credentials(
    headers: &HeaderMap,
    request: &TokenRequest,
) -> Result<(String, String), GrantError> {
    let Some((id, secret)) = basic_credentials(headers)? else {
        return match (&request.client_id, &request.client_secret) {
            (Some(id), Some(secret)) => Ok((id.clone(), secret.clone())),
            _ => Err(GrantError::InvalidClient),
        };
    };

    // RFC 6749 §2.3: a client must not use more than one authentication method.
    let other_id = request
        .client_id
        .as_ref()
        .is_some_and(|posted| *posted != id);
    if request.client_secret.is_some() || other_id {
        return Err(GrantError::InvalidRequest("conflicting client credentials"));
    }
    Ok((id, secret))
}

/// The `(id, secret)` of an `Authorization: Basic` header, if there is one.
///
/// The id and secret are not form-decoded as RFC 6749 §2.3.1 asks; common clients do not
/// encode them either, and the demo ids need no encoding.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, GrantError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| GrantError::InvalidClient)?;
    let (scheme, encoded) = value.split_once(' ').ok_or(GrantError::InvalidClient)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(GrantError::InvalidClient);
    }

    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| GrantError::InvalidClient)?;
    let decoded = String::from_utf8(decoded).map_err(|_| GrantError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(GrantError::InvalidClient)?;
    Ok(Some((id.to_owned(), secret.to_owned())))
}

/// The scopes to grant: the requested ones if all are allowed, every allowed one if none
/// was requested (RFC 6749 §3.3).
fn granted_scopes<'c>(
    client: &'c Client,
    requested: Option<&str>,
) -> Result<Vec<&'c str>, GrantError> {
    let requested: Vec<&str> = requested.unwrap_or_default().split_whitespace().collect();
    if requested.is_empty() {
        return Ok(client.scopes.iter().map(String::as_str).collect());
    }

    let mut granted: Vec<&str> = Vec::new();
    for scope in requested {
        let allowed = client.scopes.iter().find(|allowed| *allowed == scope);
        let allowed = allowed.ok_or(GrantError::InvalidScope)?;
        if !granted.contains(&allowed.as_str()) {
            granted.push(allowed);
        }
    }
    Ok(granted)
}

/// The audience to put in `aud`: the requested one if allowed, else the client's first.
fn granted_audience<'c>(
    client: &'c Client,
    requested: Option<&str>,
) -> Result<Option<&'c str>, GrantError> {
    let Some(requested) = requested.filter(|audience| !audience.is_empty()) else {
        return Ok(client.audiences.first().map(String::as_str));
    };
    let allowed = client
        .audiences
        .iter()
        .find(|allowed| *allowed == requested);
    allowed
        .map(|audience| Some(audience.as_str()))
        .ok_or(GrantError::InvalidTarget)
}

impl GrantError {
    fn code(&self) -> &'static str {
        match self {
            GrantError::InvalidRequest(_) => "invalid_request",
            GrantError::InvalidClient => "invalid_client",
            GrantError::UnsupportedGrantType => "unsupported_grant_type",
            GrantError::InvalidScope => "invalid_scope",
            GrantError::InvalidTarget => "invalid_target",
        }
    }

    fn description(&self) -> &'static str {
        match self {
            GrantError::InvalidRequest(why) => why,
            GrantError::InvalidClient => "client authentication failed",
            GrantError::UnsupportedGrantType => "only client_credentials is supported",
            GrantError::InvalidScope => "a requested scope is not allowed for this client",
            GrantError::InvalidTarget => "the audience is not allowed for this client",
        }
    }
}

impl IntoResponse for GrantError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code(), "error_description": self.description() }));
        if self == GrantError::InvalidClient {
            // RFC 6749 §5.2: a 401 names the authentication scheme the client can use.
            let challenge = [(header::WWW_AUTHENTICATE, r#"Basic realm="dev-idp""#)];
            return (StatusCode::UNAUTHORIZED, challenge, body).into_response();
        }
        (StatusCode::BAD_REQUEST, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_default_to_all_and_must_be_allowed() {
        let demo = Client::demo();

        assert_eq!(
            granted_scopes(&demo, None),
            Ok(vec!["orders.read", "orders.write"])
        );
        assert_eq!(
            granted_scopes(&demo, Some("orders.read orders.read")),
            Ok(vec!["orders.read"])
        );
        assert_eq!(
            granted_scopes(&demo, Some("orders.read admin")),
            Err(GrantError::InvalidScope)
        );
    }

    #[test]
    fn audience_defaults_to_first_and_must_be_allowed() {
        let demo = Client::demo();

        assert_eq!(granted_audience(&demo, None), Ok(Some("api://orders")));
        assert_eq!(
            granted_audience(&demo, Some("api://orders")),
            Ok(Some("api://orders"))
        );
        assert_eq!(
            granted_audience(&demo, Some("api://other")),
            Err(GrantError::InvalidTarget)
        );
    }

    #[test]
    fn basic_header_is_decoded_and_other_schemes_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "Basic ZGVtbzpkZW1vLXNlY3JldA==".parse().unwrap(),
        );
        let expected = Some(("demo".to_owned(), "demo-secret".to_owned()));

        assert_eq!(basic_credentials(&headers), Ok(expected));
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_credentials(&headers), Err(GrantError::InvalidClient));
    }
}
