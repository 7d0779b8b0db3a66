//! The Check answers, end to end over gRPC: allow with headers, and each kind of deny
//! with its status, challenge, body and reason.

mod support;

use dev_idp::DevIdp;
use serde_json::json;
use support::{TestServer, config, get, valid_claims, valid_token, with};

async fn setup() -> (DevIdp, TestServer) {
    let idp = DevIdp::start().await.expect("idp starts");
    let server = TestServer::start(&config(&idp)).await;
    (idp, server)
}

#[tokio::test]
async fn no_token_gets_a_bare_challenge() {
    let (_idp, server) = setup().await;

    let answer = server.check(get("/orders")).await;

    assert_eq!(answer.grpc_code(), 16);
    assert_eq!(answer.status(), 401);
    assert_eq!(
        answer.challenge().as_deref(),
        Some(r#"Bearer realm="orders""#)
    );
    assert_eq!(answer.reason(), "token_missing");
    assert_eq!(answer.body()["error"], "unauthorized");
    assert!(answer.headers_overwrite());
}

#[tokio::test]
async fn valid_token_is_allowed_with_correlation_and_claim_headers() {
    let (idp, server) = setup().await;
    let token = valid_token(&idp);

    let answer = server
        .check(
            get("/orders/7")
                .bearer(&token)
                .header("x-correlation-id", "abc-123"),
        )
        .await;

    assert_eq!(answer.grpc_code(), 0);
    assert_eq!(
        answer.header("x-correlation-id").as_deref(),
        Some("abc-123")
    );
    assert_eq!(
        answer.response_header("x-correlation-id").as_deref(),
        Some("abc-123")
    );
    assert_eq!(answer.header("x-auth-sub").as_deref(), Some("user-123"));
    assert_eq!(
        answer.header("x-auth-scopes").as_deref(),
        Some("orders.read")
    );
    assert!(answer.removed().is_empty());
    assert!(answer.headers_overwrite());
    assert_eq!(answer.metadata("decision").as_deref(), Some("allow"));
    assert_eq!(answer.metadata("policy").as_deref(), Some("orders"));
    assert_eq!(answer.metadata("sub").as_deref(), Some("user-123"));
}

#[tokio::test]
async fn expired_token_gets_invalid_token_challenge() {
    let (idp, server) = setup().await;
    let now = support::now();
    let token = idp.mint(&with(
        valid_claims(&idp),
        json!({"iat": now - 7200, "exp": now - 3600}),
    ));

    let answer = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(answer.status(), 401);
    assert_eq!(answer.grpc_code(), 16);
    assert_eq!(
        answer.challenge().as_deref(),
        Some(r#"Bearer realm="orders", error="invalid_token", error_description="token expired""#)
    );
    assert_eq!(answer.reason(), "token_expired");
    assert_eq!(answer.body()["error"], "invalid_token");
    assert_eq!(answer.body()["error_description"], "token expired");
}

#[tokio::test]
async fn missing_scope_gets_403_naming_the_required_scopes() {
    let (idp, server) = setup().await;
    let token = idp.mint(&with(valid_claims(&idp), json!({"scope": "orders.write"})));

    let answer = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(answer.status(), 403);
    assert_eq!(answer.grpc_code(), 7);
    assert_eq!(
        answer.challenge_error().as_deref(),
        Some("insufficient_scope")
    );
    assert!(
        answer
            .challenge()
            .unwrap()
            .ends_with(r#"scope="orders.read""#)
    );
    assert_eq!(answer.reason(), "insufficient_scope");
}

#[tokio::test]
async fn deny_body_carries_the_correlation_id_it_returns() {
    let (_idp, server) = setup().await;

    let answer = server.check(get("/orders").request_id("envoy-req-1")).await;

    assert_eq!(
        answer.header("x-correlation-id").as_deref(),
        Some("envoy-req-1")
    );
    assert_eq!(answer.body()["correlation_id"], "envoy-req-1");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn correlation_id_is_accepted_inherited_or_minted() {
    let (_idp, server) = setup().await;

    let accepted = server
        .check(
            get("/health")
                .header("x-correlation-id", "c-1")
                .request_id("r-1"),
        )
        .await;
    let unsafe_value = server
        .check(
            get("/health")
                .header("x-correlation-id", "a b")
                .request_id("r-2"),
        )
        .await;
    let minted = server.check(get("/health")).await;

    assert_eq!(accepted.header("x-correlation-id").as_deref(), Some("c-1"));
    assert_eq!(
        unsafe_value.header("x-correlation-id").as_deref(),
        Some("r-2")
    );
    let id = minted.header("x-correlation-id").unwrap();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
}

#[tokio::test]
async fn anonymous_route_allows_and_removes_forged_identity_headers() {
    let (_idp, server) = setup().await;

    let answer = server
        .check(get("/health").header("x-auth-sub", "admin"))
        .await;

    assert_eq!(answer.grpc_code(), 0);
    assert_eq!(answer.removed(), ["x-auth-scopes", "x-auth-sub"]);
    assert_eq!(answer.metadata("policy").as_deref(), Some("anonymous"));
}

#[tokio::test]
async fn forged_claim_headers_are_overwritten_or_removed() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "forward_claims: { sub: x-auth-sub, scope: x-auth-scopes }",
        concat!(
            "forward_claims: { sub: x-auth-sub, scope: x-auth-scopes, tenant: x-auth-tenant, ",
            "name: x-auth-name }\n    strip_token: true"
        ),
    );
    let server = TestServer::start(&yaml).await;
    let token = idp.mint(&with(
        valid_claims(&idp),
        json!({"name": "A\r\nx-injected: 1"}),
    ));

    let answer = server
        .check(
            get("/orders")
                .bearer(&token)
                .header("x-auth-sub", "admin")
                .header("x-auth-tenant", "t-evil"),
        )
        .await;

    assert_eq!(answer.grpc_code(), 0);
    assert_eq!(answer.header("x-auth-sub").as_deref(), Some("user-123"));
    assert_eq!(answer.header("x-auth-name"), None);
    assert_eq!(
        answer.removed(),
        ["x-auth-name", "x-auth-tenant", "authorization"]
    );
    assert!(answer.headers_overwrite());
}

#[tokio::test]
async fn context_extension_policy_wins_over_routes() {
    let (idp, server) = setup().await;
    let token = valid_token(&idp);

    let named = server.check(get("/health").policy("orders")).await;
    let unknown = server
        .check(get("/orders").bearer(&token).policy("nope"))
        .await;
    let unrouted = server.check(get("/elsewhere").bearer(&token)).await;

    assert_eq!(
        (named.status(), named.reason().as_str()),
        (401, "token_missing")
    );
    assert_eq!(
        (unknown.status(), unknown.reason().as_str()),
        (500, "unknown_policy")
    );
    assert_eq!(unknown.grpc_code(), 7);
    assert_eq!(
        (unrouted.status(), unrouted.reason().as_str()),
        (403, "no_policy")
    );
    assert_eq!(unrouted.challenge(), None);
}

#[tokio::test]
async fn policy_can_override_status_and_message() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "    provider: idp\n",
        concat!(
            "    provider: idp\n",
            "    on_failure: { status: 403, message: \"Access token is missing or invalid.\" }\n"
        ),
    );
    let server = TestServer::start(&yaml).await;

    let answer = server.check(get("/orders")).await;

    assert_eq!(answer.status(), 403);
    assert_eq!(answer.grpc_code(), 7);
    assert_eq!(
        answer.body()["error_description"],
        "Access token is missing or invalid."
    );
    assert_eq!(answer.reason(), "token_missing");
}

#[tokio::test]
async fn raw_header_map_is_read() {
    let (idp, server) = setup().await;
    let token = valid_token(&idp);

    let good = server
        .check(get("/orders").bearer(&token).raw_headers())
        .await;
    let twice = server
        .check(get("/orders").bearer(&token).bearer(&token).raw_headers())
        .await;
    let binary = server
        .check(
            get("/orders")
                .header_bytes("authorization", b"Bearer \xff\xfe")
                .raw_headers(),
        )
        .await;

    assert_eq!(good.grpc_code(), 0);
    assert_eq!(
        (twice.status(), twice.reason().as_str()),
        (400, "multiple_credentials")
    );
    assert_eq!(twice.challenge_error().as_deref(), Some("invalid_request"));
    assert_eq!(
        (binary.status(), binary.reason().as_str()),
        (400, "credentials_malformed")
    );
}

#[tokio::test]
async fn merged_repeated_authorization_is_invalid_request() {
    let (idp, server) = setup().await;
    let token = valid_token(&idp);

    let answer = server
        .check(get("/orders").bearer(&token).bearer(&token))
        .await;

    assert_eq!(
        (answer.status(), answer.reason().as_str()),
        (400, "credentials_malformed")
    );
}

#[tokio::test]
async fn token_in_query_cookie_or_custom_header() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "    provider: idp\n",
        concat!(
            "    provider: idp\n",
            "    token: [{ query: access_token }, { cookie: at }, { header: x-api-token }]\n"
        ),
    );
    let server = TestServer::start(&yaml).await;
    let token = valid_token(&idp);

    let query = server
        .check(get(&format!("/orders?page=2&access_token={token}")))
        .await;
    let cookie = server
        .check(get("/orders").header("cookie", &format!("a=b; at={token}")))
        .await;
    let header = server
        .check(get("/orders").header("x-api-token", &token))
        .await;
    let both = server
        .check(get(&format!("/orders?access_token={token}")).header("x-api-token", &token))
        .await;
    let bearer_ignored = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(query.grpc_code(), 0);
    assert_eq!(cookie.grpc_code(), 0);
    assert_eq!(header.grpc_code(), 0);
    assert_eq!(
        (both.status(), both.reason().as_str()),
        (400, "multiple_credentials")
    );
    assert_eq!(
        (bearer_ignored.status(), bearer_ignored.reason().as_str()),
        (401, "token_missing")
    );
}

#[tokio::test]
async fn oversize_token_is_refused_before_decoding() {
    let (_idp, server) = setup().await;
    let huge = "a".repeat(70 * 1024);

    let answer = server.check(get("/orders").bearer(&huge)).await;

    assert_eq!(
        (answer.status(), answer.reason().as_str()),
        (401, "token_too_large")
    );
}

#[tokio::test]
async fn nested_claims_and_any_all_requirements() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "    scopes: { all: [orders.read] }\n",
        concat!(
            "    scopes: { any: [orders.read, orders.admin] }\n    claims:\n",
            "      realm_access.roles: { all: [buyer] }\n      tenant: { any: [acme, globex] }\n"
        ),
    );
    let server = TestServer::start(&yaml).await;
    let base = with(
        valid_claims(&idp),
        json!({"realm_access": {"roles": ["buyer", "x"]}, "tenant": "acme"}),
    );
    let cases = [
        (base.clone(), 200, ""),
        (
            with(base.clone(), json!({"scope": "orders.admin"})),
            200,
            "",
        ),
        (
            with(base.clone(), json!({"tenant": "initech"})),
            403,
            "claim_mismatch",
        ),
        (
            with(base.clone(), json!({"tenant": null})),
            403,
            "claim_mismatch",
        ),
        (
            with(base.clone(), json!({"realm_access": {"roles": ["x"]}})),
            403,
            "claim_mismatch",
        ),
        (
            with(base.clone(), json!({"realm_access": {"roles": [1]}})),
            401,
            "claim_malformed",
        ),
        (
            with(base.clone(), json!({"scp": "orders.read", "scope": null})),
            200,
            "",
        ),
    ];

    for (claims, status, reason) in cases {
        let answer = server
            .check(get("/orders").bearer(&idp.mint(&claims)))
            .await;
        assert_eq!(
            (answer.status(), answer.reason().as_str()),
            (status, reason),
            "{claims}"
        );
    }
}
