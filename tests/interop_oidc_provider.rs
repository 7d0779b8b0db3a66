//! Interop with node `oidc-provider` (a certified OpenID provider), run from
//! `interop/oidc-provider/server.mjs` on loopback.
//!
//! Clients register through the provider's dynamic registration endpoint (RFC 7591) and get
//! RFC 9068 `at+jwt` access tokens by the client-credentials grant, naming the API with a
//! resource indicator (RFC 8707). tollgate's provider entry comes from the discovery
//! document alone.
//!
//! `scripts/install-idps oidc-provider` runs `npm ci` there; one provider process serves
//! every test but the rotation test, which starts its own so that rotating keys cannot
//! disturb the others.

// Helpers outside #[test] functions panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

#[path = "support/interop.rs"]
mod interop;

use std::time::Duration;

use interop::{
    AUDIENCE, Discovery, Front, Install, OTHER_AUDIENCE, READ_SCOPE, Supervised, access_token,
    announce_skip, decode_unverified, discover, token_request, tollgate_config,
};
use serde_json::{Value, json};
use support::{TestServer, get};
use tokio::sync::OnceCell;

const NAME: &str = "oidc-provider";

/// Algorithms tollgate accepts from this provider: the two it signs access tokens with.
const ALGORITHMS: &[&str] = &["RS256", "ES256"];

/// The provider shared by the tests of this binary (`None` when it is unavailable).
static SHARED: OnceCell<Option<OidcProvider>> = OnceCell::const_new();

/// A running oidc-provider and what its start line told.
struct OidcProvider {
    _process: Supervised,
    discovery: Discovery,
    initial_access_token: String,
    admin_token: String,
}

/// A client registered at the provider.
struct Client {
    id: String,
    secret: String,
}

impl OidcProvider {
    /// The shared provider, started on first use; `None` (announced) when unavailable.
    async fn shared() -> Option<&'static OidcProvider> {
        SHARED.get_or_init(Self::start).await.as_ref()
    }

    async fn start() -> Option<OidcProvider> {
        if let Install::Unavailable(reason) = interop::install(NAME) {
            announce_skip(NAME, &reason);
            return None;
        }
        let script = interop::repo_root().join("interop/oidc-provider/server.mjs");
        let process = Supervised::start(
            NAME,
            tempfile::tempdir().unwrap(),
            "node".as_ref(),
            &[script.display().to_string()],
            &[],
        );
        let start_line = start_line(&process).await;
        let issuer = start_line["issuer"].as_str().unwrap().to_owned();
        let discovery_url = format!("{issuer}/.well-known/openid-configuration");
        process
            .wait_for(&discovery_url, Duration::from_secs(30))
            .await;
        Some(OidcProvider {
            _process: process,
            discovery: discover(&discovery_url).await,
            initial_access_token: start_line["initial_access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
            admin_token: start_line["admin_token"].as_str().unwrap().to_owned(),
        })
    }

    /// Registers a client-credentials client whose access tokens are signed with `alg`,
    /// through the provider's registration endpoint.
    async fn register(&self, alg: &str) -> Client {
        let endpoint = self.discovery.document["registration_endpoint"]
            .as_str()
            .expect("discovery names a registration_endpoint");
        let metadata = json!({
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "orders.read orders.write billing.read",
            "access_token_signed_response_alg": alg,
        });
        let answer = interop::http_client()
            .post(endpoint)
            .bearer_auth(&self.initial_access_token)
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

    /// An access token for `client` for `resource` with `scope` (none when empty).
    async fn token(&self, client: &Client, resource: &str, scope: &str) -> String {
        let mut params = vec![("resource", resource)];
        if !scope.is_empty() {
            params.push(("scope", scope));
        }
        let endpoint = &self.discovery.token_endpoint;
        access_token(&token_request(endpoint, &client.id, &client.secret, &params).await)
    }

    /// Calls one of the admin hooks of `server.mjs` (`rotate` or `retire`); returns the kids
    /// left in the JWKS.
    async fn keys(&self, action: &str) -> Vec<String> {
        let url = format!("{}/admin/keys/{action}", self.discovery.issuer);
        let answer = interop::http_client()
            .post(&url)
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{url}");
        let body: Value = answer.json().await.unwrap();
        serde_json::from_value(body["kids"].clone()).unwrap()
    }

    async fn tollgate(&self) -> TestServer {
        TestServer::start(&tollgate_config(&self.discovery, ALGORITHMS)).await
    }
}

/// The JSON line `server.mjs` prints once it listens.
async fn start_line(process: &Supervised) -> Value {
    for _ in 0..300 {
        let log = process.log();
        if let Some(line) = log.lines().find(|l| l.starts_with("{\"issuer\"")) {
            return serde_json::from_str(line).unwrap();
        }
        assert!(
            process.running(),
            "oidc-provider exited at start; its log ends:\n{}",
            process.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "oidc-provider printed no start line within 30 s; its log ends:\n{}",
        process.log_tail(40)
    );
}

#[tokio::test]
async fn rs256_at_jwt_with_the_scope_and_audience_is_allowed() {
    let Some(idp) = OidcProvider::shared().await else {
        return;
    };
    let client = idp.register("RS256").await;
    let token = idp.token(&client, AUDIENCE, READ_SCOPE).await;
    let server = idp.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    assert_eq!(answer.header("x-auth-sub").as_deref(), Some(&*client.id));
    let (header, claims) = decode_unverified(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["scope"], READ_SCOPE);
    assert_eq!(claims["client_id"], json!(client.id));
}

#[tokio::test]
async fn es256_at_jwt_is_allowed() {
    let Some(idp) = OidcProvider::shared().await else {
        return;
    };
    let client = idp.register("ES256").await;
    let token = idp.token(&client, AUDIENCE, READ_SCOPE).await;
    let server = idp.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    assert_eq!(decode_unverified(&token).0["alg"], "ES256");
}

#[tokio::test]
async fn token_without_the_scope_gets_403_insufficient_scope() {
    let Some(idp) = OidcProvider::shared().await else {
        return;
    };
    let client = idp.register("RS256").await;
    let write_only = idp.token(&client, AUDIENCE, "orders.write").await;
    let no_scope = idp.token(&client, AUDIENCE, "").await;
    let server = idp.tollgate().await;

    for token in [write_only, no_scope] {
        let answer = server
            .check(get("/orders").policy("orders-read").bearer(&token))
            .await;

        assert_eq!(answer.status(), 403, "{:?}", answer.body());
        assert_eq!(answer.reason(), "insufficient_scope");
        assert_eq!(
            answer.challenge_error().as_deref(),
            Some("insufficient_scope")
        );
    }
}

#[tokio::test]
async fn token_for_another_audience_gets_401_audience_not_accepted() {
    let Some(idp) = OidcProvider::shared().await else {
        return;
    };
    let client = idp.register("ES256").await;
    let token = idp.token(&client, OTHER_AUDIENCE, "billing.read").await;
    let server = idp.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    assert_eq!(answer.status(), 401, "{:?}", answer.body());
    assert_eq!(answer.reason(), "audience_not_accepted");
    assert_eq!(answer.challenge_error().as_deref(), Some("invalid_token"));
}

#[tokio::test]
async fn tokens_stay_allowed_across_a_key_rotation() {
    // Its own provider: rotating the shared one would race the other tests.
    let Some(idp) = OidcProvider::start().await else {
        return;
    };
    let client = idp.register("RS256").await;
    let before = idp.token(&client, AUDIENCE, READ_SCOPE).await;
    let server = idp.tollgate().await;
    let check = |token: String| {
        let server = &server;
        async move {
            server
                .check(get("/orders").policy("orders-read").bearer(&token))
                .await
        }
    };
    assert_eq!(check(before.clone()).await.status(), 200);

    // A new key signs from now on; the old one is still published.
    let kids = idp.keys("rotate").await;
    let after = idp.token(&client, AUDIENCE, READ_SCOPE).await;
    let new_kid = decode_unverified(&after).0["kid"].clone();
    assert_ne!(new_kid, decode_unverified(&before).0["kid"]);
    assert_eq!(kids.len(), 4, "{kids:?}");
    let answer = check(after.clone()).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    assert_eq!(check(before.clone()).await.status(), 200);

    // The old key leaves the JWKS: a tollgate that fetches the keys now refuses what it
    // signed and still allows the new key's tokens.
    assert_eq!(idp.keys("retire").await.len(), 2);
    let fresh = idp.tollgate().await;
    let answer = fresh
        .check(get("/orders").policy("orders-read").bearer(&after))
        .await;
    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    let answer = fresh
        .check(get("/orders").policy("orders-read").bearer(&before))
        .await;
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.reason(), "unknown_kid");
}

#[tokio::test]
async fn through_envoy_the_good_token_reaches_upstream_and_a_missing_scope_is_403() {
    let Some(idp) = OidcProvider::shared().await else {
        return;
    };
    let client = idp.register("ES256").await;
    let good = idp.token(&client, AUDIENCE, READ_SCOPE).await;
    let write_only = idp.token(&client, AUDIENCE, "orders.write").await;
    let server = idp.tollgate().await;
    let front = Front::start(server.server.grpc_addr()).await;

    let (status, _, body) = front.get("/orders/7", &good).await;
    let (denied, challenge, _) = front.get("/orders/7", &write_only).await;

    assert_eq!(status, 200, "{body}");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["headers"]["x-auth-sub"], json!([client.id]));
    assert_eq!(echoed["headers"]["x-auth-scopes"], json!([READ_SCOPE]));
    assert_eq!(denied, 403);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert_eq!(front.echo.requests(), 1);
}
