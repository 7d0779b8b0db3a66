//! The `client_credentials` grant at `POST /token`, over real HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use dev_idp::{Client, DevIdp, Options};
use serde_json::Value;

use support::{get_json, verify};

async fn post(idp: &DevIdp, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(idp.token_url()).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn basic_auth_gets_a_signed_token_with_all_allowed_scopes() {
    let idp = DevIdp::start().await.unwrap();

    let (status, body) = post(
        &idp,
        Some(("demo", "demo-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "orders.read orders.write");
    let jwks = get_json(&idp.jwks_url()).await;
    let claims = verify(&jwks, body["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["sub"], "demo");
    assert_eq!(claims["client_id"], "demo");
    assert_eq!(claims["azp"], "demo");
    assert_eq!(claims["aud"], "api://orders");
    assert_eq!(claims["scope"], "orders.read orders.write");
    assert!(claims["jti"].is_string() && claims["nbf"] == claims["iat"]);
}

#[tokio::test]
async fn posted_credentials_can_narrow_scope_and_pick_an_audience() {
    let client: Client = "svc:pw:a,b,c:api://one,api://two".parse().unwrap();
    let options = Options {
        clients: vec![client],
        ..Options::default()
    };
    let idp = DevIdp::start_with(options).await.unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "svc"),
        ("client_secret", "pw"),
        ("scope", "c a"),
        ("audience", "api://two"),
    ];

    let (status, body) = post(&idp, None, &form).await;

    assert_eq!(status, 200);
    assert_eq!(body["scope"], "c a");
    let claims = support::decode(body["access_token"].as_str().unwrap()).1;
    assert_eq!(claims["aud"], "api://two");
    assert_eq!(claims["scope"], "c a");
}

#[tokio::test]
async fn wrong_or_missing_credentials_get_invalid_client() {
    let idp = DevIdp::start().await.unwrap();
    let grant = ("grant_type", "client_credentials");

    let wrong = post(&idp, Some(("demo", "nope")), &[grant]).await;
    let unknown = post(
        &idp,
        None,
        &[grant, ("client_id", "x"), ("client_secret", "y")],
    )
    .await;
    let missing = post(&idp, None, &[grant]).await;

    for (status, body) in [wrong, unknown, missing] {
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_client");
    }
}

#[tokio::test]
async fn disallowed_scope_audience_or_grant_is_refused() {
    let idp = DevIdp::start().await.unwrap();
    let demo = Some(("demo", "demo-secret"));
    let grant = ("grant_type", "client_credentials");

    let scope = post(&idp, demo, &[grant, ("scope", "orders.read admin")]).await;
    let audience = post(&idp, demo, &[grant, ("audience", "api://other")]).await;
    let password = post(&idp, demo, &[("grant_type", "password")]).await;

    assert_eq!(
        (scope.0, scope.1["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    assert_eq!(
        (audience.0, audience.1["error"].as_str()),
        (400, Some("invalid_target"))
    );
    assert_eq!(
        (password.0, password.1["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}
