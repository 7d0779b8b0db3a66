//! Metrics at `/metrics`, in a test binary of their own: the registry is process-wide, so
//! no other test may move the counters while this one reads them.

mod support;

use dev_idp::DevIdp;
use support::{TestServer, config, get, valid_token};

/// A Prometheus sample value from exposition text.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_decisions_refreshes_and_cache() {
    let idp = DevIdp::start().await.unwrap();
    let server = TestServer::start(&config(&idp)).await;
    let (_, before) = server.admin("/metrics").await;
    let token = valid_token(&idp);

    server.check(get("/orders").bearer(&token)).await;
    server.check(get("/orders").bearer(&token)).await;
    server.check(get("/orders")).await;
    let (status, after) = server.admin("/metrics").await;

    assert_eq!(status, 200);
    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(
        delta(r#"tollgate_check_decisions_total{decision="allow",reason=""}"#),
        2.0
    );
    assert_eq!(
        delta(r#"tollgate_check_decisions_total{decision="deny",reason="token_missing"}"#),
        1.0
    );
    assert!(delta("tollgate_token_cache_hits_total") >= 1.0, "{after}");
    assert!(
        delta("tollgate_check_duration_seconds_count") >= 3.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            r#"tollgate_jwks_refreshes_total{provider="idp",outcome="success"}"#
        ) >= 1.0
    );
    assert_eq!(sample(&after, r#"tollgate_jwks_keys{provider="idp"}"#), 1.0);
    assert!(
        after.contains("# TYPE tollgate_jwks_age_seconds gauge"),
        "{after}"
    );
    assert!(!after.contains(&token), "a token never reaches metrics");
}
