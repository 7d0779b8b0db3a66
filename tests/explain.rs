//! `tollgate explain` against a real identity provider over HTTP: the check table shows
//! expected and actual values, and the answer is the pipeline's own.

// Helpers outside the test functions unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use dev_idp::DevIdp;
use serde_json::{Value, json};
use support::{AUDIENCE, config, now, valid_claims, valid_token, with};
use tollgate::config::Config;
use tollgate::explain::{self, Check, Input, Report, Status};

/// The harness config (policy `orders` on `/orders`, scope `orders.read`) as a file.
fn config_file(idp: &DevIdp) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, config(idp)).unwrap();
    (dir, path)
}

async fn explain_get(idp: &DevIdp, token: &str, at: i64) -> Report {
    let (_dir, path) = config_file(idp);
    let config = Arc::new(Config::load(&path).unwrap());
    let input = Input {
        token: token.to_owned(),
        method: "GET".into(),
        path: "/orders/7".into(),
        host: "api.example.test".into(),
        policy: None,
    };
    let client = tollgate::jwks::fetch::client().unwrap();
    explain::explain(config, &input, &client, at).await
}

fn row<'r>(report: &'r Report, name: &str) -> &'r Check {
    let found = report.checks.iter().find(|c| c.name == name);
    found.unwrap_or_else(|| panic!("no check {name} in {:#?}", report.checks))
}

fn failed(report: &Report) -> Vec<&str> {
    let failed = report.checks.iter().filter(|c| c.status == Status::Fail);
    failed.map(|c| c.name.as_str()).collect()
}

/// Runs the real binary with the token on stdin.
async fn run_cli(args: Vec<String>, token: String) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, token.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn good_token_passes_every_check_and_is_allowed() {
    let idp = DevIdp::start().await.unwrap();
    let token = valid_token(&idp);

    let report = explain_get(&idp, &token, now()).await;

    assert_eq!(report.policy.name.as_deref(), Some("orders"));
    assert_eq!(report.policy.selected_by, "route");
    assert_eq!(
        report.policy.reason,
        "routes[0] { prefix: /orders } is the first route matching GET api.example.test/orders/7"
    );
    assert!(report.token.unverified);
    assert_eq!(report.token.claims.as_ref().unwrap()["sub"], "user-123");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "token",
            "format",
            "algorithm",
            "key",
            "signature",
            "issuer",
            "exp",
            "nbf",
            "iat",
            "audience",
            "scopes"
        ]
    );
    assert!(failed(&report).is_empty(), "{:#?}", report.checks);
    let provider = report.provider.as_ref().unwrap();
    assert_eq!(provider.keys_from.as_deref(), Some(idp.jwks_url().as_str()));
    assert!(provider.keys.iter().any(|k| k.selected));
    assert_eq!(
        (report.answer.decision, report.answer.status),
        ("allow", 200)
    );
    assert!(
        report
            .answer
            .upstream_headers
            .contains(&("x-auth-sub".to_owned(), "user-123".to_owned()))
    );
}

#[tokio::test]
async fn wrong_audience_shows_expected_and_actual() {
    let idp = DevIdp::start().await.unwrap();
    let token = idp.mint(&with(valid_claims(&idp), json!({"aud": ["api://billing"]})));

    let report = explain_get(&idp, &token, now()).await;

    assert_eq!(failed(&report), ["audience"]);
    let audience = row(&report, "audience");
    assert_eq!(
        audience.expected.as_deref(),
        Some(format!("one of [{AUDIENCE:?}]").as_str())
    );
    assert_eq!(audience.actual.as_deref(), Some(r#"["api://billing"]"#));
    assert_eq!(audience.detail.as_deref(), Some("audience not accepted"));
    assert_eq!(report.answer.status, 401);
    assert_eq!(report.answer.reason, Some("audience_not_accepted"));
    assert_eq!(
        report.answer.challenge.as_deref(),
        Some(
            r#"Bearer realm="orders", error="invalid_token", error_description="audience not accepted""#
        )
    );
}

#[tokio::test]
async fn missing_scope_names_the_missing_scope_and_gets_403() {
    let idp = DevIdp::start().await.unwrap();
    let token = idp.mint(&with(valid_claims(&idp), json!({"scope": "profile email"})));

    let report = explain_get(&idp, &token, now()).await;

    assert_eq!(failed(&report), ["scopes"]);
    let scopes = row(&report, "scopes");
    assert_eq!(
        scopes.expected.as_deref(),
        Some(r#"all of ["orders.read"] in scope or scp"#)
    );
    assert_eq!(
        scopes.actual.as_deref(),
        Some(r#"scope: ["profile", "email"]"#)
    );
    assert_eq!(scopes.detail.as_deref(), Some(r#"missing ["orders.read"]"#));
    assert_eq!(report.answer.status, 403);
    assert_eq!(report.answer.reason, Some("insufficient_scope"));
    assert_eq!(
        report.answer.challenge.as_deref(),
        Some(
            r#"Bearer realm="orders", error="insufficient_scope", error_description="token lacks a required scope", scope="orders.read""#
        )
    );
}

#[tokio::test]
async fn expired_token_shows_exp_against_now_and_skew() {
    let idp = DevIdp::start().await.unwrap();
    let at = now();
    let exp = at - 3600;
    let claims = json!({"exp": exp, "iat": at - 7200, "nbf": at - 7200});
    let token = idp.mint(&with(valid_claims(&idp), claims));

    let report = explain_get(&idp, &token, at).await;

    assert_eq!(failed(&report), ["exp"]);
    let row = row(&report, "exp");
    assert_eq!(
        row.expected,
        Some(format!("later than now - skew (now {at}, skew 60s)"))
    );
    assert_eq!(row.actual, Some(format!("{exp} (1h ago)")));
    assert_eq!(
        row.detail,
        Some(format!("token expired at {exp} (now {at}, skew 60s)"))
    );
    assert_eq!(report.answer.reason, Some("token_expired"));
    assert_eq!(report.answer.status, 401);
}

#[tokio::test]
async fn wrong_issuer_shows_both_issuers() {
    let idp = DevIdp::start().await.unwrap();
    let claims = with(
        valid_claims(&idp),
        json!({"iss": "https://other.example.test"}),
    );
    let token = idp.mint(&claims);

    let report = explain_get(&idp, &token, now()).await;

    assert_eq!(failed(&report), ["issuer"]);
    let issuer = row(&report, "issuer");
    assert_eq!(issuer.expected, Some(format!("{:?}", idp.issuer())));
    assert_eq!(
        issuer.actual.as_deref(),
        Some(r#""https://other.example.test""#)
    );
    assert_eq!(report.answer.reason, Some("issuer_mismatch"));
}

#[tokio::test]
async fn unknown_kid_lists_the_published_kids() {
    let idp = DevIdp::start().await.unwrap();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "retired-2023"});
    let token = idp.mint_with_header(&idp.signing_kid(), &header, &valid_claims(&idp));

    let report = explain_get(&idp, &token, now()).await;

    assert_eq!(failed(&report), ["key"]);
    let key = row(&report, "key");
    assert_eq!(
        key.expected,
        Some(format!(
            "a key for kid \"retired-2023\" and RS256 at {}",
            idp.jwks_url()
        ))
    );
    assert_eq!(key.actual, Some(format!("kids [{:?}]", idp.signing_kid())));
    assert_eq!(key.detail.as_deref(), Some("no key with this kid"));
    assert_eq!(row(&report, "signature").status, Status::Skip);
    assert_eq!(report.answer.reason, Some("unknown_kid"));
}

#[tokio::test]
async fn cli_reads_the_token_from_stdin_and_exits_by_answer() {
    let idp = DevIdp::start().await.unwrap();
    let (_dir, path) = config_file(&idp);
    let args = |extra: &[&str]| {
        let mut args = vec!["explain".to_owned(), "--config".to_owned()];
        args.push(path.display().to_string());
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let bad = idp.mint(&with(valid_claims(&idp), json!({"aud": "api://billing"})));

    let allowed = run_cli(args(&["--path", "/orders"]), valid_token(&idp) + "\n").await;
    let denied = run_cli(args(&["--path", "/orders"]), format!("Bearer {bad}")).await;

    assert!(allowed.status.success());
    let stdout = String::from_utf8(allowed.stdout).unwrap();
    assert!(stdout.contains("token     UNVERIFIED: decoded without checking the signature"));
    assert!(
        stdout.ends_with("upstream x-auth-sub: user-123\n"),
        "{stdout}"
    );
    assert_eq!(denied.status.code(), Some(1));
    let stdout = String::from_utf8(denied.stdout).unwrap();
    let audience = format!(
        "  FAIL  audience   expected one of [{AUDIENCE:?}]; actual \"api://billing\"; \
         audience not accepted\n"
    );
    assert!(stdout.contains(&audience), "{stdout}");
    assert!(stdout.contains("\nanswer    401 deny: audience_not_accepted\n"));
}

#[tokio::test]
async fn json_output_has_every_section() {
    let idp = DevIdp::start().await.unwrap();
    let (_dir, path) = config_file(&idp);
    let args = vec![
        "explain".to_owned(),
        "--config".to_owned(),
        path.display().to_string(),
        "--policy".to_owned(),
        "orders".to_owned(),
        "--json".to_owned(),
    ];

    let output = run_cli(args, valid_token(&idp)).await;

    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["answer", "checks", "policy", "provider", "request", "token"]
    );
    assert_eq!(report["policy"]["selected_by"], "context_extension");
    assert_eq!(report["token"]["unverified"], true);
    assert_eq!(report["token"]["header"]["kid"], idp.signing_kid());
    assert_eq!(report["provider"]["name"], "idp");
    let first = &report["checks"][0];
    assert_eq!(
        first,
        &json!({
            "name": "token",
            "status": "pass",
            "expected": "header authorization (Bearer)",
            "actual": first["actual"],
            "detail": null,
        })
    );
    assert_eq!(report["answer"]["decision"], "allow");
    assert_eq!(report["answer"]["status"], 200);
    assert_eq!(report["answer"]["reason"], Value::Null);
}
