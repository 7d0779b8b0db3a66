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
//! token, so it refuses them with `audience_not_accepted`. The authorization-code grant,
//! driven here without a browser (the WAR's sample user logs in through its login form and
//! approves through its consent form), takes an `aud` request parameter into the access
//! token: such tokens are allowed by a policy that names the audience and no scopes.
//! MITREid has no API to rotate its signing keys: they are read from `keystore.jwks` at
//! start.

// Helpers outside #[test] functions panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

#[path = "support/interop.rs"]
mod interop;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use interop::{
    AUDIENCE, Discovery, Install, OTHER_AUDIENCE, READ_SCOPE, Supervised, access_token,
    announce_skip, decode_unverified, discover, post_token, token_request, tollgate_config,
};
use serde_json::{Value, json};
use support::{TestServer, get};
use tokio::sync::OnceCell;

const NAME: &str = "mitreid";

/// The issuer in the WAR's `server-config.xml`, replaced at each start.
const SHIPPED_ISSUER: &str = "http://localhost:8080/openid-connect-server-webapp/";

/// The sample user in the WAR's `users.sql`.
const USER: (&str, &str) = ("user", "password");

/// Where the authorization code is sent; never contacted (the test reads the redirect).
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

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
        self.register_with(json!({
            "client_name": "tollgate interop",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "orders.read orders.write",
        }))
        .await
    }

    /// Registers an authorization-code client redirecting to [`REDIRECT_URI`].
    async fn register_web_client(&self) -> Client {
        self.register_with(json!({
            "client_name": "tollgate interop web",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "openid orders.read",
        }))
        .await
    }

    async fn register_with(&self, metadata: Value) -> Client {
        let endpoint = self.discovery.document["registration_endpoint"]
            .as_str()
            .expect("discovery names a registration_endpoint");
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

    /// An access token by the authorization-code grant for `client`, asking for the
    /// audience `aud`: the sample user logs in and approves, as in a browser.
    async fn user_token(&self, client: &Client, aud: &str) -> String {
        let authorize = {
            let endpoint = self.discovery.document["authorization_endpoint"]
                .as_str()
                .expect("discovery names an authorization_endpoint");
            let mut url = reqwest::Url::parse(endpoint).unwrap();
            url.query_pairs_mut()
                .append_pair("response_type", "code")
                .append_pair("client_id", &client.id)
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("scope", &format!("openid {READ_SCOPE}"))
                .append_pair("aud", aud)
                .append_pair("state", "interop");
            url.to_string()
        };
        let login = format!("{}login", self.discovery.issuer);
        let mut browser = Browser::default();

        let (status, _, _) = browser.get(&authorize).await;
        assert_eq!(
            status, 302,
            "authorize without a session should go to the login page"
        );
        let (_, _, page) = browser.get(&login).await;
        let form = [
            ("username", USER.0),
            ("password", USER.1),
            ("_csrf", &csrf(&page)),
        ];
        let (status, _, _) = browser.post(&login, &form).await;
        assert_eq!(status, 302, "login refused");

        let (status, _, page) = browser.get(&authorize).await;
        assert_eq!(status, 200, "no consent page: {page}");
        let scope_field = format!("scope_{READ_SCOPE}");
        let form = [
            ("user_oauth_approval", "true"),
            ("scope_openid", "openid"),
            (&scope_field, READ_SCOPE),
            ("remember", "none"),
            ("authorize", "Authorize"),
            ("_csrf", &csrf(&page)),
        ];
        let (status, location, _) = browser.post(&authorize, &form).await;
        assert_eq!(status, 302, "consent refused");
        let location = reqwest::Url::parse(&location.unwrap()).unwrap();
        let code = location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap_or_else(|| panic!("no code in {location}"))
            .1
            .into_owned();

        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", REDIRECT_URI);
        let endpoint = &self.discovery.token_endpoint;
        let credentials = Some((client.id.as_str(), client.secret.as_str()));
        access_token(&post_token(endpoint, credentials, form.finish()).await)
    }
}

/// Just enough of a browser for MITREid's login and consent forms: it keeps cookies and
/// does not follow redirects.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    /// GETs `url`; returns status, `Location` and body.
    async fn get(&mut self, url: &str) -> (u16, Option<String>, String) {
        let request = interop::http_client().get(url);
        self.send(request).await
    }

    /// POSTs `form` to `url`; returns status, `Location` and body.
    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(form);
        let request = interop::http_client()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.finish());
        self.send(request).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let answer = request
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .unwrap();
        for set in answer.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let status = answer.status().as_u16();
        let location = answer
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location, answer.text().await.unwrap())
    }
}

/// The value of the page's `_csrf` hidden field (Spring Security's form token).
fn csrf(page: &str) -> String {
    let start = page
        .find(r#"name="_csrf" value=""#)
        .unwrap_or_else(|| panic!("no _csrf field in:\n{page}"))
        + r#"name="_csrf" value=""#.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
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

#[tokio::test]
async fn authorization_code_token_with_the_audience_is_allowed_by_an_audience_only_policy() {
    let Some(idp) = Mitreid::shared().await else {
        return;
    };
    let client = idp.register_web_client().await;
    let token = idp.user_token(&client, AUDIENCE).await;
    let server = idp.tollgate().await;

    let audience_only = server
        .check(get("/orders").policy("orders-audience").bearer(&token))
        .await;
    let with_scope = server
        .check(get("/orders").policy("orders-read").bearer(&token))
        .await;

    let claims = decode_unverified(&token).1;
    assert_eq!(claims["aud"], AUDIENCE, "{claims}");
    assert_eq!(claims["sub"], USER.0);
    assert_eq!(claims.get("scope"), None, "{claims}");
    assert_eq!(audience_only.status(), 200, "{:?}", audience_only.body());
    assert_eq!(audience_only.header("x-auth-sub").as_deref(), Some(USER.0));
    // The scope was granted, but the token does not say so.
    assert_eq!(with_scope.status(), 403);
    assert_eq!(with_scope.reason(), "insufficient_scope");
}

#[tokio::test]
async fn authorization_code_token_for_another_audience_gets_401_audience_not_accepted() {
    let Some(idp) = Mitreid::shared().await else {
        return;
    };
    let client = idp.register_web_client().await;
    let token = idp.user_token(&client, OTHER_AUDIENCE).await;
    let server = idp.tollgate().await;

    let answer = server
        .check(get("/orders").policy("orders-audience").bearer(&token))
        .await;

    assert_eq!(decode_unverified(&token).1["aud"], OTHER_AUDIENCE);
    assert_eq!(answer.status(), 401, "{:?}", answer.body());
    assert_eq!(answer.reason(), "audience_not_accepted");
}
