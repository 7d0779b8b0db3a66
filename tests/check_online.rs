//! `tollgate check-config --online` against a real identity provider over HTTP: what
//! would otherwise surface as 401s and 503s is reported before serving.

// Helpers outside the test functions unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use dev_idp::{DevIdp, Fault};
use tollgate::config::Config;
use tollgate::probe::{self, Finding, Severity};

/// Writes `yaml` as a config file (and the IdP's key set as `keys.json` next to it).
fn config_file(idp: &DevIdp, yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.json"), idp.jwks().to_string()).unwrap();
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

/// One provider (`idp`, by discovery) and one routed policy.
fn single(idp: &DevIdp, issuer: &str, algorithms: &str) -> String {
    format!(
        "providers:
  idp:
    issuer: {issuer}
    discovery: {discovery}
    algorithms: {algorithms}
policies:
  orders: {{ provider: idp, audiences: [api://orders] }}
routes:
  - {{ match: {{ prefix: /orders }}, policy: orders }}
",
        discovery = idp.discovery_url(),
    )
}

/// Runs `tollgate check-config --online` off the runtime, which serves the IdP.
async fn run_cli(path: PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["check-config", "--online", "--config"])
            .arg(path)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

async fn probe(idp: &DevIdp, yaml: &str) -> Vec<Finding> {
    let (_dir, path) = config_file(idp, yaml);
    let config = Config::load(&path).unwrap();
    let client = tollgate::jwks::fetch::client().unwrap();
    probe::check(&config, &client).await
}

fn errors(findings: &[Finding]) -> Vec<String> {
    let errors = findings.iter().filter(|f| f.severity == Severity::Error);
    errors.map(ToString::to_string).collect()
}

#[tokio::test]
async fn healthy_config_passes_with_warnings_for_what_nothing_selects() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = format!(
        "providers:
  idp:
    issuer: {issuer}
    discovery: {discovery}
    algorithms: [RS256, ES256]
  spare:
    issuer: https://spare.example.test
    jwks_file: keys.json
policies:
  orders: {{ provider: idp, audiences: [api://orders] }}
  admin: {{ provider: idp, audiences: [api://admin] }}
routes:
  - {{ match: {{ prefix: /orders }}, policy: orders }}
",
        issuer = idp.issuer(),
        discovery = idp.discovery_url(),
    );
    let (dir, path) = config_file(&idp, &yaml);

    let output = run_cli(path.clone()).await;

    let kid = idp.signing_kid();
    let keys = dir.path().join("keys.json");
    let expected = [
        format!("{}: ok (2 providers, 2 policies)", path.display()),
        format!(
            "ok       provider idp: discovery {} publishes issuer {:?}",
            idp.discovery_url(),
            idp.issuer()
        ),
        format!(
            "ok       provider idp: 1 usable key(s) at {}: {kid} RSA 2048",
            idp.jwks_url()
        ),
        format!(
            "ok       provider spare: 1 usable key(s) at {}: {kid} RSA 2048",
            keys.display()
        ),
        "warning  policy admin: no route and not the default: only Envoy can select it, \
         with context_extensions: { policy: admin } on a route; make sure one does"
            .to_owned(),
        "warning  provider spare: no policy uses it; its keys are fetched for nothing".to_owned(),
        format!("{}: online: 0 error(s), 2 warning(s)", path.display()),
    ];
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
    assert!(output.status.success());
}

#[tokio::test]
async fn issuer_mismatch_names_the_published_issuer_and_fails() {
    let idp = DevIdp::start().await.unwrap();
    let configured = format!("{}/", idp.issuer());
    let (_dir, path) = config_file(&idp, &single(&idp, &configured, "[RS256]"));

    let output = run_cli(path).await;

    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = format!(
        "error    provider idp: issuer mismatch: discovery {} publishes issuer {:?}, the \
         config says {configured:?}; keys never load, so every token is answered 503 \
         keys_unavailable (set issuer: {})\n",
        idp.discovery_url(),
        idp.issuer(),
        idp.issuer()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.ends_with(": online: 1 error(s), 0 warning(s)\n"));
}

#[tokio::test]
async fn unreachable_jwks_uri_is_an_error() {
    let idp = DevIdp::start().await.unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks", listener.local_addr().unwrap())
    };
    idp.set_jwks_uri(Some(closed.clone()));

    let findings = probe(&idp, &single(&idp, &idp.issuer(), "[RS256]")).await;

    let errors = errors(&findings);
    assert_eq!(errors.len(), 1);
    let prefix = format!("error    provider idp: jwks_uri unreachable: request to {closed} failed");
    assert!(errors[0].starts_with(&prefix), "{}", errors[0]);
}

#[tokio::test]
async fn unreachable_discovery_is_an_error() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_fault(Fault::Down);

    let findings = probe(&idp, &single(&idp, &idp.issuer(), "[RS256]")).await;

    assert_eq!(
        errors(&findings),
        [format!(
            "error    provider idp: discovery document unreachable: {} answered HTTP 503; keys \
             never load, so every token is answered 503 keys_unavailable",
            idp.discovery_url()
        )]
    );
}

#[tokio::test]
async fn no_key_for_the_allowed_algorithms_is_an_error() {
    let idp = DevIdp::start().await.unwrap();

    let findings = probe(&idp, &single(&idp, &idp.issuer(), "[ES256, EdDSA]")).await;

    let kid = idp.signing_kid();
    assert_eq!(
        errors(&findings),
        [format!(
            "error    provider idp: no key at {} fits the allowed algorithms [ES256, EdDSA]: \
             keys are {kid} RSA 2048; every token would be denied (no_usable_key or \
             key_unusable)",
            idp.jwks_url()
        )]
    );
    let warning = findings.iter().find(|f| f.severity == Severity::Warning);
    assert_eq!(
        warning.map(|f| f.message.as_str()),
        Some(
            format!("key {kid} (RSA 2048) fits none of the allowed algorithms [ES256, EdDSA]")
                .as_str()
        )
    );
}
