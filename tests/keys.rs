//! Provider keys over real HTTP: discovery, refetch on unknown `kid`, rotation, outages,
//! readiness, and key files.

mod support;

use std::time::Duration;

use dev_idp::{DevIdp, Fault, KeyAlg};
use serde_json::json;
use support::{TestServer, config, get, valid_claims, valid_token};

#[tokio::test]
async fn unknown_kid_triggers_one_refetch_then_allows() {
    let idp = DevIdp::start().await.unwrap();
    let server = TestServer::start(&config(&idp)).await;
    let fetches_before = idp.jwks_fetches();
    idp.rotate(KeyAlg::Rs256);
    let token = valid_token(&idp);

    let answer = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(answer.grpc_code(), 0);
    assert_eq!(idp.jwks_fetches(), fetches_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kids_share_one_fetch() {
    let idp = DevIdp::start().await.unwrap();
    let server = std::sync::Arc::new(TestServer::start(&config(&idp)).await);
    let fetches_before = idp.jwks_fetches();
    idp.rotate(KeyAlg::Es256);
    let token = valid_token(&idp);

    let checks = (0..50).map(|_| {
        let server = server.clone();
        let token = token.clone();
        tokio::spawn(async move { server.check(get("/orders").bearer(&token)).await })
    });
    let answers = futures_util::future::join_all(checks).await;

    assert!(answers.into_iter().all(|a| a.unwrap().grpc_code() == 0));
    assert_eq!(idp.jwks_fetches(), fetches_before + 1);
}

#[tokio::test]
async fn a_flood_of_random_kids_is_capped_by_the_cooldown() {
    let idp = DevIdp::start().await.unwrap();
    let server = TestServer::start(&config(&idp)).await;
    let fetches_before = idp.jwks_fetches();
    let signer = idp.signing_kid();

    for i in 0..200 {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": format!("kid-rand-{i}")});
        let token = idp.mint_with_header(&signer, &header, &valid_claims(&idp));
        let answer = server.check(get("/orders").bearer(&token)).await;
        assert_eq!(answer.reason(), "unknown_kid");
    }

    assert!(
        idp.jwks_fetches() <= fetches_before + 1,
        "{} fetches",
        idp.jwks_fetches()
    );
}

#[tokio::test]
async fn kidless_token_never_forces_a_refetch() {
    let idp = DevIdp::start().await.unwrap();
    let server = TestServer::start(&config(&idp)).await;
    let fetches_before = idp.jwks_fetches();
    let unpublished = idp.add_key(KeyAlg::Rs256);
    idp.remove_key(&unpublished);
    let header = json!({"alg": "RS256"});

    let good = idp.mint_with_header(&idp.signing_kid(), &header, &valid_claims(&idp));
    let bad = idp.mint_with_header(&unpublished, &header, &valid_claims(&idp));
    let good = server.check(get("/orders").bearer(&good)).await;
    let bad = server.check(get("/orders").bearer(&bad)).await;

    assert_eq!(good.grpc_code(), 0);
    assert_eq!(
        (bad.status(), bad.reason().as_str()),
        (401, "signature_invalid")
    );
    assert_eq!(idp.jwks_fetches(), fetches_before);
}

#[tokio::test]
async fn a_removed_key_stops_verifying_after_the_refresh_that_removes_it() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "    refetch_cooldown: 30s\n",
        "    refresh: 200ms\n    min_refresh: 100ms\n",
    );
    let server = TestServer::start(&yaml).await;
    let old = idp.signing_kid();
    let token = valid_token(&idp);
    assert_eq!(
        server
            .check(get("/orders").bearer(&token))
            .await
            .grpc_code(),
        0
    );

    idp.rotate(KeyAlg::Rs256);
    idp.remove_key(&old);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let answer = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(
        (answer.status(), answer.reason().as_str()),
        (401, "unknown_kid")
    );
}

#[tokio::test]
async fn discovery_issuer_mismatch_is_503_and_not_ready() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_discovery_issuer(Some(format!("{}/other", idp.issuer())));
    let server = TestServer::start_unready(&config(&idp)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let answer = server
        .check(get("/orders").bearer(&valid_token(&idp)))
        .await;
    let (status, body) = server.admin("/readyz").await;

    assert_eq!(
        (answer.status(), answer.reason().as_str()),
        (503, "keys_unavailable")
    );
    assert_eq!(answer.grpc_code(), 7);
    assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
    assert_eq!(answer.challenge(), None);
    assert_eq!(status, 503);
    assert!(body.contains("declares issuer"), "{body}");
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "jwks_uri of a refused document is never fetched"
    );
}

#[tokio::test]
async fn provider_down_at_start_gives_503_then_recovers_without_restart() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_fault(Fault::Down);
    let server = TestServer::start_unready(&config(&idp)).await;
    let token = valid_token(&idp);

    let during = server.check(get("/orders").bearer(&token)).await;
    let (ready_during, _) = server.admin("/readyz").await;
    idp.set_fault(Fault::None);
    server.wait_ready().await;
    let after = server.check(get("/orders").bearer(&token)).await;
    let (ready_after, _) = server.admin("/readyz").await;

    assert_eq!(
        (during.status(), during.reason().as_str()),
        (503, "keys_unavailable")
    );
    assert_eq!(ready_during, 503);
    assert_eq!(after.grpc_code(), 0);
    assert_eq!(ready_after, 200);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_good_keys() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "    refetch_cooldown: 30s\n",
        "    refresh: 100ms\n    min_refresh: 100ms\n",
    );
    let server = TestServer::start(&yaml).await;
    let token = valid_token(&idp);

    for fault in [Fault::Garbage, Fault::Empty, Fault::Down, Fault::Huge] {
        idp.set_fault(fault);
        let fetches = idp.jwks_fetches() + idp.discovery_fetches();
        while idp.jwks_fetches() + idp.discovery_fetches() == fetches {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let answer = server.check(get("/orders").bearer(&token)).await;
        assert_eq!(answer.grpc_code(), 0, "{fault:?}");
    }
    let (status, _) = server.admin("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn cache_control_max_age_sets_the_refresh_interval_within_bounds() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_cache_control(Some("public, max-age=1".into()));
    let yaml = config(&idp).replace(
        "    refetch_cooldown: 30s\n",
        "    refresh: 1h\n    min_refresh: 200ms\n",
    );
    let server = TestServer::start(&yaml).await;
    let fetches = idp.jwks_fetches();

    tokio::time::sleep(Duration::from_millis(2300)).await;

    let refreshes = idp.jwks_fetches() - fetches;
    assert!(
        (1..=3).contains(&refreshes),
        "{refreshes} refreshes in 2.3 s with max-age=1"
    );
    drop(server);
}

#[tokio::test]
async fn jwks_file_provider_needs_no_network() {
    let idp = DevIdp::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), idp.jwks().to_string()).unwrap();
    let yaml = format!(
        "
server: {{ grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }}
providers:
  local:
    issuer: {}
    jwks_file: jwks.json
policies:
  orders:
    provider: local
    audiences: [api://orders]
default: orders
",
        idp.issuer()
    );
    let config = tollgate::config::Config::parse(&yaml, &dir.path().join("tollgate.yaml")).unwrap();
    idp.set_fault(Fault::Down);
    let server = TestServer::start_config(config).await;
    server.wait_ready().await;

    let answer = server
        .check(get("/anything").bearer(&valid_token(&idp)))
        .await;

    assert_eq!(answer.grpc_code(), 0);
    assert_eq!(idp.jwks_fetches() + idp.discovery_fetches(), 0);
}

#[tokio::test]
async fn jwks_uri_provider_without_discovery() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        &format!("discovery: {}", idp.discovery_url()),
        &format!("jwks_uri: {}", idp.jwks_url()),
    );
    let server = TestServer::start(&yaml).await;

    let answer = server
        .check(get("/orders").bearer(&valid_token(&idp)))
        .await;

    assert_eq!(answer.grpc_code(), 0);
    assert_eq!(idp.discovery_fetches(), 0);
}

#[tokio::test]
async fn a_jwks_uri_on_another_host_is_refused_unless_listed() {
    let idp = DevIdp::start().await.unwrap();
    // `localhost` is another host name than the issuer's `127.0.0.1`.
    idp.set_jwks_uri(Some(format!("http://localhost:{}/jwks", idp.addr().port())));
    let refused = TestServer::start_unready(&config(&idp)).await;
    let allowed_yaml = config(&idp).replace(
        "    refetch_cooldown: 30s\n",
        "    jwks_hosts: [localhost]\n",
    );
    let allowed = TestServer::start(&allowed_yaml).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, body) = refused.admin("/readyz").await;
    let answer = allowed
        .check(get("/orders").bearer(&valid_token(&idp)))
        .await;

    assert_eq!(status, 503);
    assert!(body.contains("sends keys to host \"localhost\""), "{body}");
    assert_eq!(answer.grpc_code(), 0);
}

#[tokio::test]
async fn a_slow_provider_times_out_and_checks_do_not_wait_for_it() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_fault(Fault::Stall);
    let yaml = config(&idp).replace("    refetch_cooldown: 30s\n", "    fetch_timeout: 300ms\n");
    let server = TestServer::start_unready(&yaml).await;

    let started = std::time::Instant::now();
    let answer = server
        .check(get("/orders").bearer(&valid_token(&idp)))
        .await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = server.admin("/readyz").await;

    assert_eq!(
        (answer.status(), answer.reason().as_str()),
        (503, "keys_unavailable")
    );
    assert!(
        took < Duration::from_millis(200),
        "the check waited {took:?}"
    );
    assert_eq!(status, 503);
    assert!(body.contains("failed"), "{body}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let idp = DevIdp::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = idp.jwks_url();
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let yaml = config(&idp).replace(
        &format!("discovery: {}", idp.discovery_url()),
        &format!("jwks_uri: http://127.0.0.1:{port}/jwks"),
    );
    let server = TestServer::start_unready(&yaml).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, body) = server.admin("/readyz").await;

    assert_eq!(status, 503);
    assert!(body.contains("answered HTTP 307"), "{body}");
    assert_eq!(idp.jwks_fetches(), 0);
}

#[tokio::test]
async fn keys_serve_until_max_stale_then_checks_get_503() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "    refetch_cooldown: 30s\n",
        "    refresh: 200ms\n    min_refresh: 100ms\n    max_stale: 1s\n",
    );
    let server = TestServer::start(&yaml).await;
    let token = valid_token(&idp);

    idp.set_fault(Fault::Down);
    let within = server.check(get("/orders").bearer(&token)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let beyond = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(within.grpc_code(), 0);
    assert_eq!(
        (beyond.status(), beyond.reason().as_str()),
        (503, "keys_unavailable")
    );
    assert_eq!(beyond.header("retry-after").as_deref(), Some("5"));
}
