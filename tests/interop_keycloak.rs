//! Interop with Keycloak (`keycloak-quarkus-dist` from Maven Central), started once per test
//! binary in dev mode on loopback.
//!
//! Everything is set up through Keycloak's admin REST API: a realm, client scopes
//! `orders.read` and `orders.write` (optional, so a token carries them only when asked
//! for), confidential clients with a service account and an audience mapper, an ES256 key,
//! and a user for the password grant. tollgate's provider entry comes from the realm's
//! discovery document alone.
//!
//! `scripts/install-idps keycloak` downloads it, finds a Java 21+ and leaves a database
//! template that each run copies. The rotation test rotates keys in a realm of its own, so
//! the other tests never see a key disappear.

// Helpers outside #[test] functions panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

#[path = "support/interop.rs"]
mod interop;

use std::path::PathBuf;
use std::time::Duration;

use interop::{
    AUDIENCE, Discovery, Front, Install, OTHER_AUDIENCE, READ_SCOPE, Supervised, access_token,
    announce_skip, decode_unverified, discover, post_token, token_request, tollgate_config,
};
use serde_json::{Value, json};
use support::{TestServer, get};
use tokio::sync::OnceCell;

const NAME: &str = "keycloak";

/// The admin account in the database template that `scripts/install-idps` made.
const ADMIN: (&str, &str) = ("admin", "admin");

/// Algorithms tollgate accepts from Keycloak here. Keycloak's discovery lists many more
/// (HS256 among them, which tollgate refuses), since a realm can hold any kind of key.
const ALGORITHMS: &[&str] = &["RS256", "ES256"];

/// The client secret of every client the tests create (loopback, tests only).
const SECRET: &str = "interop-secret";

/// The user of the password grant.
const USER: (&str, &str) = ("alice", "alice-password");

static SHARED: OnceCell<Option<Keycloak>> = OnceCell::const_new();
static ORDERS_REALM: OnceCell<Realm> = OnceCell::const_new();

/// A running Keycloak.
struct Keycloak {
    _process: Supervised,
    base: String,
}

/// A realm set up for the tests, and its discovery document.
struct Realm {
    discovery: Discovery,
}

impl Keycloak {
    /// The Keycloak shared by this binary's tests; `None` (announced) when unavailable.
    async fn shared() -> Option<&'static Keycloak> {
        SHARED.get_or_init(Self::start).await.as_ref()
    }

    async fn start() -> Option<Keycloak> {
        let dir = match interop::install(NAME) {
            Install::Ready(dir) => dir,
            Install::Unavailable(reason) => {
                announce_skip(NAME, &reason);
                return None;
            }
        };
        let version = std::fs::read_to_string(dir.join("READY")).unwrap();
        let version = version.trim().trim_start_matches("keycloak ");
        let java_home = std::fs::read_to_string(dir.join("java-home")).unwrap();
        let kc = dir.join(format!("keycloak-{version}/bin/kc.sh"));

        // A copy of the template database per run, so runs neither share nor keep state.
        let run_dir = tempfile::tempdir().unwrap();
        let db: PathBuf = run_dir.path().join("keycloakdb");
        std::fs::copy(
            dir.join("template/keycloakdb.mv.db"),
            db.with_extension("mv.db"),
        )
        .unwrap();
        let port = interop::free_port();
        let args = [
            "start-dev".to_owned(),
            "--http-host=127.0.0.1".to_owned(),
            format!("--http-port={port}"),
            format!("--db-url=jdbc:h2:file:{};NON_KEYWORDS=VALUE", db.display()),
        ];
        let process = Supervised::start(
            NAME,
            run_dir,
            &kc,
            &args,
            &[("JAVA_HOME", java_home.trim().to_owned())],
        );
        let base = format!("http://127.0.0.1:{port}");
        process
            .wait_for(
                &format!("{base}/realms/master/.well-known/openid-configuration"),
                Duration::from_secs(300),
            )
            .await;
        Some(Keycloak {
            _process: process,
            base,
        })
    }

    /// The `orders` realm, set up on first use.
    async fn orders_realm(&self) -> &'static Realm {
        ORDERS_REALM
            .get_or_init(|| self.create_realm("orders"))
            .await
    }

    /// Creates realm `name` with everything the tests use, through the admin REST API.
    async fn create_realm(&self, name: &str) -> Realm {
        let admin = self.admin().await;
        admin
            .post("/admin/realms", json!({ "realm": name, "enabled": true }))
            .await;
        let realm = format!("/admin/realms/{name}");

        for scope in ["orders.read", "orders.write"] {
            let client_scope = json!({
                "name": scope,
                "protocol": "openid-connect",
                "attributes": { "include.in.token.scope": "true" },
            });
            admin
                .post(&format!("{realm}/client-scopes"), client_scope)
                .await;
        }

        // ES256 needs an EC key, which a new realm does not have.
        let realm_id = admin.get(&realm).await["id"].as_str().unwrap().to_owned();
        let ec_key = json!({
            "name": "ecdsa-p256",
            "providerId": "ecdsa-generated",
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": { "priority": ["100"], "ecdsaEllipticCurveKey": ["P-256"] },
        });
        admin.post(&format!("{realm}/components"), ec_key).await;

        for (client_id, audience, alg) in [
            ("orders-client", AUDIENCE, "RS256"),
            ("orders-es256-client", AUDIENCE, "ES256"),
            ("billing-client", OTHER_AUDIENCE, "RS256"),
        ] {
            admin
                .post(
                    &format!("{realm}/clients"),
                    client(client_id, audience, alg),
                )
                .await;
        }

        let user = json!({
            "username": USER.0,
            "enabled": true,
            "email": "alice@example.test",
            "emailVerified": true,
            "firstName": "Alice",
            "lastName": "Example",
            "credentials": [{ "type": "password", "value": USER.1, "temporary": false }],
        });
        admin.post(&format!("{realm}/users"), user).await;

        let url = format!(
            "{}/realms/{name}/.well-known/openid-configuration",
            self.base
        );
        Realm {
            discovery: discover(&url).await,
        }
    }

    /// A client of the admin REST API with a fresh token (Keycloak's last a minute).
    async fn admin(&self) -> Admin {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "password")
            .append_pair("client_id", "admin-cli")
            .append_pair("username", ADMIN.0)
            .append_pair("password", ADMIN.1);
        let endpoint = format!("{}/realms/master/protocol/openid-connect/token", self.base);
        let answer = post_token(&endpoint, None, form.finish()).await;
        Admin {
            base: self.base.clone(),
            token: access_token(&answer),
            http: interop::http_client(),
        }
    }
}

/// A confidential client with a service account, the default scopes `basic`, `profile` and
/// `roles`, the optional scopes `orders.read` and `orders.write`, an audience mapper adding
/// `audience`, and access tokens signed with `alg`.
fn client(client_id: &str, audience: &str, alg: &str) -> Value {
    json!({
        "clientId": client_id,
        "secret": SECRET,
        "publicClient": false,
        "serviceAccountsEnabled": true,
        "directAccessGrantsEnabled": true,
        "standardFlowEnabled": false,
        // `basic` adds `sub` to user tokens (Keycloak 25+; without it they have none);
        // `roles` adds the roles, and with them the audience `account`.
        "defaultClientScopes": ["basic", "profile", "roles"],
        "optionalClientScopes": ["orders.read", "orders.write"],
        "attributes": { "access.token.signed.response.alg": alg },
        "protocolMappers": [{
            "name": "audience",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {
                "included.custom.audience": audience,
                "access.token.claim": "true",
                "id.token.claim": "false",
            },
        }],
    })
}

/// Keycloak's admin REST API, with a token of the master realm's admin.
struct Admin {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    /// POSTs `body` to `path`; returns the `Location` of what was created.
    async fn post(&self, path: &str, body: Value) -> String {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let location = answer
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let text = answer.text().await.unwrap();
        assert_eq!(status, 201, "admin API refused POST {path}: {text}");
        location.unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Value {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "admin API refused GET {path}");
        answer.json().await.unwrap()
    }

    async fn delete(&self, path: &str) {
        let answer = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204, "admin API refused DELETE {path}");
    }
}

impl Realm {
    /// A client-credentials token of `client_id`, asking for `scope` (nothing when empty).
    async fn token(&self, client_id: &str, scope: &str) -> String {
        let params: Vec<(&str, &str)> = if scope.is_empty() {
            Vec::new()
        } else {
            vec![("scope", scope)]
        };
        let endpoint = &self.discovery.token_endpoint;
        access_token(&token_request(endpoint, client_id, SECRET, &params).await)
    }

    async fn tollgate(&self) -> TestServer {
        TestServer::start(&tollgate_config(&self.discovery, ALGORITHMS)).await
    }
}

/// The token's scopes, sorted: Keycloak lists them in no fixed order.
fn scopes(claims: &Value) -> Vec<&str> {
    let mut scopes: Vec<&str> = claims["scope"].as_str().unwrap().split(' ').collect();
    scopes.sort_unstable();
    scopes
}

/// The strings of a JSON array, sorted.
fn sorted(array: &Value) -> Vec<&str> {
    let mut items: Vec<&str> = array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    items.sort_unstable();
    items
}

/// The shared Keycloak's `orders` realm, or `None` when Keycloak is unavailable.
async fn orders_realm() -> Option<&'static Realm> {
    Some(Keycloak::shared().await?.orders_realm().await)
}

#[tokio::test]
async fn service_account_token_with_the_scope_and_audience_is_allowed() {
    let Some(realm) = orders_realm().await else {
        return;
    };
    let token = realm.token("orders-client", READ_SCOPE).await;
    let server = realm.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    let (header, claims) = decode_unverified(&token);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "RS256");
    // The mapper's audience, and `account` because the `roles` scope puts the service
    // account's account-client roles in; azp names the client; sub is the service
    // account's user id, not the client id.
    assert_eq!(sorted(&claims["aud"]), ["account", AUDIENCE], "{claims}");
    assert_eq!(claims["azp"], "orders-client");
    assert_eq!(claims["typ"], "Bearer");
    assert_eq!(scopes(&claims), ["orders.read", "profile"]);
    assert_eq!(
        answer.header("x-auth-sub"),
        claims["sub"].as_str().map(str::to_owned)
    );
}

#[tokio::test]
async fn es256_token_is_allowed() {
    let Some(realm) = orders_realm().await else {
        return;
    };
    let token = realm.token("orders-es256-client", READ_SCOPE).await;
    let server = realm.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    assert_eq!(decode_unverified(&token).0["alg"], "ES256");
}

#[tokio::test]
async fn token_without_the_scope_gets_403_insufficient_scope() {
    let Some(realm) = orders_realm().await else {
        return;
    };
    // Without asking, a token carries only the default scopes that add to `scope`.
    let no_scope = realm.token("orders-client", "").await;
    let write_only = realm.token("orders-client", "orders.write").await;
    let server = realm.tollgate().await;

    assert_eq!(decode_unverified(&no_scope).1["scope"], "profile");
    for token in [no_scope, write_only] {
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
    let Some(realm) = orders_realm().await else {
        return;
    };
    let token = realm.token("billing-client", READ_SCOPE).await;
    let server = realm.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    let aud = &decode_unverified(&token).1["aud"];
    assert_eq!(sorted(aud), ["account", OTHER_AUDIENCE]);
    assert_eq!(answer.status(), 401, "{:?}", answer.body());
    assert_eq!(answer.reason(), "audience_not_accepted");
    assert_eq!(answer.challenge_error().as_deref(), Some("invalid_token"));
}

#[tokio::test]
async fn password_grant_token_for_a_user_is_allowed() {
    let Some(realm) = orders_realm().await else {
        return;
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "password")
        .append_pair("username", USER.0)
        .append_pair("password", USER.1)
        .append_pair("scope", READ_SCOPE);
    let endpoint = &realm.discovery.token_endpoint;
    let answer = post_token(endpoint, Some(("orders-client", SECRET)), form.finish()).await;
    let token = access_token(&answer);
    let server = realm.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    let claims = decode_unverified(&token).1;
    assert_eq!(claims["preferred_username"], USER.0, "{claims}");
    assert_eq!(
        answer.header("x-auth-sub"),
        claims["sub"].as_str().map(str::to_owned)
    );
    // The default scope joins the optional one asked for.
    assert_eq!(scopes(&claims), ["orders.read", "profile"]);
}

#[tokio::test]
async fn the_realm_encryption_key_in_the_jwks_is_skipped() {
    let Some(realm) = orders_realm().await else {
        return;
    };
    let jwks_uri = realm.discovery.document["jwks_uri"].as_str().unwrap();
    let jwks: Value = interop::http_client()
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let server = realm.tollgate().await;

    let (status, metrics) = server.admin("/metrics").await;

    let keys = jwks["keys"].as_array().unwrap();
    let uses: Vec<&str> = keys.iter().map(|k| k["use"].as_str().unwrap()).collect();
    assert!(
        keys.iter()
            .any(|k| k["use"] == "enc" && k["alg"] == "RSA-OAEP"),
        "{jwks}"
    );
    let signing = uses.iter().filter(|u| **u == "sig").count();
    assert_eq!(status, 200);
    let gauge = format!("tollgate_jwks_keys{{provider=\"idp\"}} {signing}");
    assert!(
        metrics.lines().any(|l| l == gauge),
        "want {gauge:?} ({uses:?}) in:\n{metrics}"
    );
}

#[tokio::test]
async fn tokens_stay_allowed_across_a_key_rotation() {
    let Some(keycloak) = Keycloak::shared().await else {
        return;
    };
    // Its own realm: rotating the shared realm's keys would race the other tests.
    let realm = keycloak.create_realm("rotation").await;
    let before = realm.token("orders-client", READ_SCOPE).await;
    let server = realm.tollgate().await;
    let allowed = |token: String| {
        let server = &server;
        async move {
            let answer = server
                .check(get("/orders").policy("orders-read").bearer(&token))
                .await;
            assert_eq!(answer.status(), 200, "{:?}", answer.body());
        }
    };
    allowed(before.clone()).await;

    // A new RSA key with a higher priority signs from now on; the old one stays published.
    let admin = keycloak.admin().await;
    let realm_id = admin.get("/admin/realms/rotation").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let providers = "/admin/realms/rotation/components?type=org.keycloak.keys.KeyProvider";
    let old = admin
        .get(providers)
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["providerId"] == "rsa-generated")
        .expect("a new realm has an rsa-generated key")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = json!({
        "name": "rsa-rotated",
        "providerId": "rsa-generated",
        "providerType": "org.keycloak.keys.KeyProvider",
        "parentId": realm_id,
        "config": { "priority": ["200"], "keySize": ["2048"], "algorithm": ["RS256"] },
    });
    admin
        .post("/admin/realms/rotation/components", rotated)
        .await;
    let after = realm.token("orders-client", READ_SCOPE).await;
    assert_ne!(
        decode_unverified(&after).0["kid"],
        decode_unverified(&before).0["kid"]
    );
    allowed(after.clone()).await;
    allowed(before.clone()).await;

    // The old key is deleted: a tollgate that fetches the keys now refuses what it signed.
    admin
        .delete(&format!("/admin/realms/rotation/components/{old}"))
        .await;
    let fresh = realm.tollgate().await;
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
    let Some(realm) = orders_realm().await else {
        return;
    };
    let good = realm.token("orders-client", READ_SCOPE).await;
    let no_scope = realm.token("orders-client", "").await;
    let server = realm.tollgate().await;
    let front = Front::start(server.server.grpc_addr()).await;

    let (status, _, body) = front.get("/orders/7", &good).await;
    let (denied, challenge, _) = front.get("/orders/7", &no_scope).await;

    assert_eq!(status, 200, "{body}");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    let sub = decode_unverified(&good).1["sub"].clone();
    assert_eq!(echoed["headers"]["x-auth-sub"], json!([sub]));
    assert_eq!(denied, 403);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert_eq!(front.echo.requests(), 1);
}
