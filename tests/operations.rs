//! Running in production: metrics, gRPC health, reload, graceful shutdown.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dev_idp::{DevIdp, Fault, KeyAlg};
use serde_json::json;
use support::{TestServer, config, get, valid_claims, valid_token};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn grpc_health_follows_readiness() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_fault(Fault::Down);
    let server = TestServer::start_unready(&config(&idp)).await;
    let url = format!("http://{}", server.server.grpc_addr());
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let status = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let down = health
        .check(status("envoy.service.auth.v3.Authorization"))
        .await
        .unwrap();
    idp.set_fault(Fault::None);
    server.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let up = health
        .check(status("envoy.service.auth.v3.Authorization"))
        .await
        .unwrap();
    let overall = health.check(status("")).await.unwrap();

    assert_eq!(down.into_inner().status, ServingStatus::NotServing as i32);
    assert_eq!(up.into_inner().status, ServingStatus::Serving as i32);
    assert_eq!(overall.into_inner().status, ServingStatus::Serving as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_valid_configs_and_rejects_invalid_ones_without_failing_a_check() {
    let idp = DevIdp::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, config(&idp)).unwrap();
    let config_file = tollgate::config::Config::load(&path).unwrap();
    let server = Arc::new(TestServer::start_config(config_file).await);
    server.wait_ready().await;
    let fetches = idp.jwks_fetches();
    let token = valid_token(&idp);
    let wrong = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let load = tokio::spawn({
        let (server, token, wrong, done) =
            (server.clone(), token.clone(), wrong.clone(), done.clone());
        async move {
            let mut checks = 0;
            loop {
                tokio::select! {
                    () = done.notified() => return checks,
                    answer = server.check(get("/orders").bearer(&token)) => {
                        checks += 1;
                        if answer.grpc_code() != 0 {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&path, "providers: [").unwrap();
    let rejected = server.server.reloader().reload().await;
    let widened = config(&idp).replace(
        "scopes: { all: [orders.read] }",
        "scopes: { any: [orders.read, orders.admin] }",
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&path, widened).unwrap();
    let accepted = server.server.reloader().reload().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.notify_one();
    let checks = load.await.unwrap();

    assert!(rejected.is_err());
    assert!(accepted.is_ok());
    assert!(checks > 10, "{checks} checks ran during the reloads");
    assert_eq!(wrong.load(Ordering::Relaxed), 0);
    assert_eq!(
        idp.jwks_fetches(),
        fetches,
        "an unchanged provider keeps its keys"
    );
    let admin_token = idp.mint(&support::with(
        valid_claims(&idp),
        json!({"scope": "orders.admin"}),
    ));
    assert_eq!(
        server
            .check(get("/orders").bearer(&admin_token))
            .await
            .grpc_code(),
        0
    );
}

#[tokio::test]
async fn a_changed_file_is_picked_up_by_the_watcher() {
    let idp = DevIdp::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, config(&idp)).unwrap();
    let server = TestServer::start_config(tollgate::config::Config::load(&path).unwrap()).await;
    server.wait_ready().await;
    let token = valid_token(&idp);
    assert_eq!(
        server
            .check(get("/orders").bearer(&token))
            .await
            .grpc_code(),
        0
    );

    std::fs::write(
        &path,
        config(&idp).replace(
            "scopes: { all: [orders.read] }",
            "scopes: { all: [orders.admin] }",
        ),
    )
    .unwrap();
    let mut answer = server.check(get("/orders").bearer(&token)).await;
    for _ in 0..60 {
        if answer.status() == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = server.check(get("/orders").bearer(&token)).await;
    }

    assert_eq!(
        (answer.status(), answer.reason().as_str()),
        (403, "insufficient_scope")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_ready_and_drains_in_flight_checks() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "grpc: 127.0.0.1:0",
        "grpc: 127.0.0.1:0\n  check_budget: 1500ms",
    );
    let server = TestServer::start(&yaml).await;
    // A token whose kid is unknown makes the Check wait for a refetch that stalls.
    idp.set_fault(Fault::Stall);
    idp.rotate(KeyAlg::Rs256);
    let token = valid_token(&idp);
    let admin = server.server.admin_addr();
    let in_flight = tokio::spawn({
        let request = get("/orders").bearer(&token);
        let url = format!("http://{}", server.server.grpc_addr());
        async move {
            use envoy_types::pb::envoy::service::auth::v3::authorization_client as client;
            let mut client = client::AuthorizationClient::connect(url).await.unwrap();
            client.check(request.build()).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let TestServer { server, .. } = server;
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .map(|r| r.status().as_u16());
    let answer = in_flight
        .await
        .unwrap()
        .expect("the in-flight check completes");
    shutdown.await.unwrap();

    assert_eq!(ready.ok(), Some(503));
    assert_eq!(
        answer.into_inner().status.unwrap().code,
        16,
        "answered, not cut off"
    );
}
