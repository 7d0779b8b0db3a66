//! `debug_reason_header`: a policy can name the reason of each deny in a response header,
//! for debugging; without it nothing but the generic answer reaches the client.

mod support;

use dev_idp::DevIdp;
use serde_json::json;
use support::{TestServer, config, get, now, valid_claims, valid_token, with};

fn expired_token(idp: &DevIdp) -> String {
    let at = now();
    let times = json!({"exp": at - 3600, "iat": at - 7200, "nbf": at - 7200});
    idp.mint(&with(valid_claims(idp), times))
}

#[tokio::test]
async fn flagged_policy_names_the_deny_reason_in_a_header() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "    forward_claims:",
        "    debug_reason_header: true\n    forward_claims:",
    );
    let server = TestServer::start(&yaml).await;

    let denied = server
        .check(get("/orders").bearer(&expired_token(&idp)))
        .await;
    let missing = server.check(get("/orders")).await;
    let allowed = server
        .check(get("/orders").bearer(&valid_token(&idp)))
        .await;

    assert_eq!(denied.status(), 401);
    assert_eq!(
        denied.header("x-tollgate-reason").as_deref(),
        Some("token_expired")
    );
    assert_eq!(
        missing.header("x-tollgate-reason").as_deref(),
        Some("token_missing")
    );
    assert!(allowed.allowed());
    assert_eq!(allowed.header("x-tollgate-reason"), None);
}

#[tokio::test]
async fn without_the_flag_no_reason_reaches_the_client() {
    let idp = DevIdp::start().await.unwrap();
    let server = TestServer::start(&config(&idp)).await;

    let denied = server
        .check(get("/orders").bearer(&expired_token(&idp)))
        .await;

    assert_eq!(denied.status(), 401);
    assert_eq!(denied.reason(), "token_expired");
    assert_eq!(denied.header("x-tollgate-reason"), None);
}
