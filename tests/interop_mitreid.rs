//! Interop with MITREid Connect 1.3.3 (the `openid-connect-server-webapp` WAR from Maven
//! Central) on Jetty 9.4's runner, started once per test binary on loopback.
//!
//! MITREid 1.3.3 is a 2018 Spring 4 application built for Java 8. It runs on Java 17 with
//! two changes that `scripts/install-idps mitreid` and this file make, and no others:
//! `--add-opens java.base/java.lang=ALL-UNNAMED` (Spring 4's CGLIB proxies call
//! `ClassLoader.defineClass` by reflection) and the JAXB jars in `WEB-INF/lib` (the JDK
//! dropped JAXB in Java 11; Spring Security OAuth needs it to render errors). The issuer in
//! `WEB-INF/server-config.xml` is set to the run's address in a per-run copy of the webapp.
//!
//! What the tests show: dynamic registration and the client-credentials grant work, and
//! tollgate verifies the tokens (RS256 with the `kid` of the WAR's sample key), but
//! MITREid's client-credentials access tokens carry neither `aud` nor `scope` (its token
//! enhancer takes `aud` only from an authorization request; scopes are reported by token
//! introspection). tollgate requires an audience in every policy and reads scopes from the
//! token, so it refuses them with `audience_not_accepted`. MITREid has no API to rotate
//! its signing keys: they are read from `keystore.jwks` at start.

// Helpers outside #[test] functions panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

#[path = "support/interop.rs"]
mod interop;

use std::process::Command;
use std::time::Duration;

use interop::{
    AUDIENCE, Discovery, Install, READ_SCOPE, Supervised, access_token, announce_skip,
    decode_unverified, discover, token_request, tollgate_config,
};
use serde_json::{Value, json};
use support::{TestServer, get};
use tokio::sync::OnceCell;

const NAME: &str = "mitreid";

/// The issuer in the WAR's `server-config.xml`, replaced at each start.
const SHIPPED_ISSUER: &str = "http://localhost:8080/openid-connect-server-webapp/";

static SHARED: OnceCell<Option<Mitreid>> = OnceCell::const_new();

/// A running MITREid Connect.
struct Mitreid {
    _process: Supervised,
    discovery: Discovery,
}

/// A dynamically registered client.
struct Client {
    id: String,
    secret: String,
}

impl Mitreid {
    /// The MITREid shared by this binary's tests; `None` (announced) when unavailable.
    async fn shared() -> Option<&'static Mitreid> {
        SHARED.get_or_init(Self::start).await.as_ref()
    }

    async fn start() -> Option<Mitreid> {
        let dir = match interop::install(NAME) {
            Install::Ready(dir) => dir,
            Install::Unavailable(reason) => {
                announce_skip(NAME, &reason);
                return None;
            }
        };
        let port = interop::free_port();
        let issuer = format!("http://127.0.0.1:{port}/");

        let run_dir = tempfile::tempdir().unwrap();
        let webapp = run_dir.path().join("webapp");
        let copied = Command::new("cp")
            .arg("-r")
            .arg(dir.join("webapp"))
            .arg(&webapp)
            .status()
            .unwrap();
        assert!(copied.success(), "cannot copy the MITREid webapp");
        let config = webapp.join("WEB-INF/server-config.xml");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(
            text.contains(SHIPPED_ISSUER),
            "{} changed",
            config.display()
        );
        std::fs::write(&config, text.replace(SHIPPED_ISSUER, &issuer)).unwrap();

        let args = [
            "--add-opens".to_owned(),
            "java.base/java.lang=ALL-UNNAMED".to_owned(),
            "-jar".to_owned(),
            dir.join("jetty-runner.jar").display().to_string(),
            "--host".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            port.to_string(),
            "--path".to_owned(),
            "/".to_owned(),
            webapp.display().to_string(),
        ];
        let process = Supervised::start(NAME, run_dir, "java".as_ref(), &args, &[]);
        let url = format!("{issuer}.well-known/openid-configuration");
        process.wait_for(&url, Duration::from_secs(180)).await;
        Some(Mitreid {
            _process: process,
            discovery: discover(&url).await,
        })
    }

    /// Registers a client-credentials client through the registration endpoint.
    async fn register(&self) -> Client {
        let endpoint = self.discovery.document["registration_endpoint"]
            .as_str()
            .expect("discovery names a registration_endpoint");
        let metadata = json!({
            "client_name": "tollgate interop",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "orders.read orders.write",
        });
        let answer = interop::http_client()
            .post(endpoint)
            .json(&metadata)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert_eq!(status, 201, "registration refused: {body}");
        Client {
            id: body["client_id"].as_str().unwrap().to_owned(),
            secret: body["client_secret"].as_str().unwrap().to_owned(),
        }
    }

    async fn tollgate(&self) -> TestServer {
        TestServer::start(&tollgate_config(&self.discovery, &["RS256"])).await
    }
}

#[tokio::test]
async fn client_credentials_token_verifies_but_has_no_audience_so_it_is_refused() {
    let Some(idp) = Mitreid::shared().await else {
        return;
    };
    let client = idp.register().await;
    let endpoint = &idp.discovery.token_endpoint;
    let response = token_request(
        endpoint,
        &client.id,
        &client.secret,
        &[("scope", READ_SCOPE)],
    )
    .await;
    let token = access_token(&response);
    let server = idp.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    // The grant itself reports the scope; the token does not carry it, nor an audience.
    assert_eq!(response["scope"], READ_SCOPE);
    let (header, claims) = decode_unverified(&token);
    assert_eq!(header, json!({ "kid": "rsa1", "alg": "RS256" }));
    assert_eq!(claims["iss"], json!(idp.discovery.issuer));
    assert_eq!(claims["azp"], json!(client.id));
    assert!(claims["sub"].is_string(), "{claims}");
    assert_eq!(claims.get("aud"), None, "{claims}");
    assert_eq!(claims.get("scope"), None, "{claims}");
    // Signature, issuer and time checks pass; the audience check is the one that fails.
    assert_eq!(answer.status(), 401, "{:?}", answer.body());
    assert_eq!(answer.reason(), "audience_not_accepted");
    assert_eq!(answer.challenge_error().as_deref(), Some("invalid_token"));
}

#[tokio::test]
async fn asking_for_an_audience_at_the_token_endpoint_adds_none() {
    let Some(idp) = Mitreid::shared().await else {
        return;
    };
    let client = idp.register().await;
    let endpoint = &idp.discovery.token_endpoint;

    let mut tokens = Vec::new();
    for extra in [
        ("aud", AUDIENCE),
        ("resource", AUDIENCE),
        ("audience", AUDIENCE),
    ] {
        let params = [("scope", READ_SCOPE), extra];
        let response = token_request(endpoint, &client.id, &client.secret, &params).await;
        tokens.push(access_token(&response));
    }

    for token in tokens {
        assert_eq!(decode_unverified(&token).1.get("aud"), None);
    }
}
