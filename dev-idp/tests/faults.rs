//! Faults of the discovery and JWKS endpoints, over real HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use dev_idp::{DevIdp, Fault};

#[tokio::test]
async fn down_answers_503_on_discovery_and_jwks_and_counts_fetches() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_fault(Fault::Down);

    let discovery = reqwest::get(idp.discovery_url())
        .await
        .unwrap()
        .status()
        .as_u16();
    let jwks = reqwest::get(idp.jwks_url())
        .await
        .unwrap()
        .status()
        .as_u16();

    assert_eq!((discovery, jwks), (503, 503));
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));
    idp.set_fault(Fault::None);
    support::get_json(&idp.jwks_url()).await;
}

#[tokio::test]
async fn garbage_and_empty_answer_200_with_bodies_that_are_not_json() {
    let idp = DevIdp::start().await.unwrap();

    idp.set_fault(Fault::Garbage);
    let garbage = reqwest::get(idp.jwks_url()).await.unwrap();
    assert_eq!(garbage.status(), 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&garbage.bytes().await.unwrap()).is_err());

    idp.set_fault(Fault::Empty);
    let empty = reqwest::get(idp.discovery_url()).await.unwrap();
    assert_eq!(empty.status(), 200);
    assert!(empty.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn huge_answers_over_five_mib_of_valid_json() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_fault(Fault::Huge);

    let body = reqwest::get(idp.jwks_url())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    assert!(body.len() > 5 * 1024 * 1024);
    let jwks: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "k1");
}

#[tokio::test]
async fn stall_hangs_only_the_faulted_request_until_the_idp_is_dropped() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_fault(Fault::Stall);
    let stalled = tokio::spawn(reqwest::get(idp.jwks_url()));

    let token = reqwest::Client::new()
        .post(idp.token_url())
        .basic_auth("demo", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(token.status(), 200);
    assert!(!stalled.is_finished());
    assert_eq!(idp.jwks_fetches(), 1);
    drop(idp);
    let ended = tokio::time::timeout(Duration::from_secs(5), stalled).await;
    assert!(
        ended.is_ok(),
        "stalled request ends when the IdP is dropped"
    );
}
