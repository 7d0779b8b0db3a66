//! The verified-token cache: hits skip verification, but never the time window or the
//! policy's requirements, and never outlive the key that verified them.

mod support;

use std::time::Duration;

use dev_idp::DevIdp;
use serde_json::json;
use support::{TestServer, config, get, valid_claims, valid_token, with};

#[tokio::test]
async fn a_repeated_token_is_a_cache_hit() {
    let idp = DevIdp::start().await.unwrap();
    let server = TestServer::start(&config(&idp)).await;
    let token = valid_token(&idp);

    let first = server.check(get("/orders").bearer(&token)).await;
    let second = server.check(get("/orders").bearer(&token)).await;

    let cache = server.server.authorizer();
    assert_eq!((first.grpc_code(), second.grpc_code()), (0, 0));
    assert_eq!((cache.cache().misses(), cache.cache().hits()), (1, 1));
    assert_eq!(second.header("x-auth-sub").as_deref(), Some("user-123"));
}

#[tokio::test]
async fn a_cached_token_still_meets_each_policy_on_its_own() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = format!(
        "{}  billing:\n    provider: idp\n    audiences: [api://billing]\n",
        config(&idp).replace("routes:", "").replace(
            concat!(
                "  - match: { prefix: /orders }\n    policy: orders\n",
                "  - match: { prefix: /health }\n    allow: anonymous\n"
            ),
            ""
        )
    );
    let server = TestServer::start(&yaml).await;
    let token = valid_token(&idp);

    let orders = server
        .check(get("/x").bearer(&token).policy("orders"))
        .await;
    let billing = server
        .check(get("/x").bearer(&token).policy("billing"))
        .await;

    assert_eq!(orders.grpc_code(), 0);
    assert_eq!(
        (billing.status(), billing.reason().as_str()),
        (401, "audience_not_accepted")
    );
    assert_eq!(server.server.authorizer().cache().hits(), 1);
}

#[tokio::test]
async fn a_cached_token_expires_on_time() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace("    refetch_cooldown: 30s\n", "    clock_skew: 0s\n");
    let server = TestServer::start(&yaml).await;
    let now = support::now();
    let token = idp.mint(&with(
        valid_claims(&idp),
        json!({"iat": now, "nbf": now, "exp": now + 2}),
    ));

    let before = server.check(get("/orders").bearer(&token)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(before.grpc_code(), 0);
    assert_eq!(
        (after.status(), after.reason().as_str()),
        (401, "token_expired")
    );
}

#[tokio::test]
async fn caching_can_be_turned_off() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = format!("{}token_cache: {{ max_bytes: 0 }}\n", config(&idp));
    let server = TestServer::start(&yaml).await;
    let token = valid_token(&idp);

    server.check(get("/orders").bearer(&token)).await;
    let again = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(again.grpc_code(), 0);
    assert_eq!(server.server.authorizer().cache().hits(), 0);
}
