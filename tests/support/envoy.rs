//! The whole stack on loopback, for tests through a real Envoy: dev-idp, tollgate (in
//! process, on `examples/demo.yaml`), the mTLS echo upstream, and Envoy on one of the
//! configs in `envoy/`. Every port is chosen at run time.
//!
//! Test files include it with `#[path = "support/envoy.rs"] mod envoy_support;`, so it is
//! independent of `support/mod.rs` (the gRPC-level harness).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dev_idp::DevIdp;
use serde_json::Value;
use tempfile::TempDir;
use testkit::echo::EchoUpstream;
use testkit::envoy::Envoy;
use testkit::pki::TestPki;
use testkit::template;
use tollgate::config::Config;
use tollgate::server::Server;
use tollgate::server::tls::TlsFiles;

/// The browser origin that the Envoy configs allow, unless a test names another.
pub const APP_ORIGIN: &str = "http://app.tollgate.test";

/// The configs in `envoy/`, by file name.
pub const FRONT_PROXY: &str = "front-proxy.yaml";
/// Same as [`FRONT_PROXY`] with mTLS between Envoy and tollgate.
pub const FRONT_PROXY_TOLLGATE_MTLS: &str = "front-proxy-tollgate-mtls.yaml";
/// Envoy's own `jwt_authn` filter instead of tollgate (a benchmark baseline).
pub const FRONT_PROXY_JWT_AUTHN: &str = "front-proxy-jwt-authn.yaml";
/// No authorization at all (a benchmark baseline).
pub const FRONT_PROXY_NO_AUTH: &str = "front-proxy-no-auth.yaml";

/// A running stack; everything stops when it is dropped.
pub struct Stack {
    /// The OpenID provider.
    pub idp: DevIdp,
    /// tollgate, until [`Stack::stop_tollgate`]; its gRPC listener requires mutual TLS
    /// with [`FRONT_PROXY_TOLLGATE_MTLS`].
    pub tollgate: Option<Server>,
    /// The upstream behind Envoy.
    pub echo: EchoUpstream,
    /// Envoy.
    pub envoy: Envoy,
    /// The certificates of this run.
    pub pki: TestPki,
    /// A plain HTTP client for talking to Envoy (no proxy, no redirects).
    pub http: reqwest::Client,
    certs: TempDir,
}

impl Stack {
    /// The front proxy (CORS, ext_authz to tollgate, mTLS upstream), allowing [`APP_ORIGIN`].
    pub async fn start() -> Stack {
        Stack::start_with(FRONT_PROXY, APP_ORIGIN).await
    }

    /// The stack with the Envoy config `envoy_config` (a file in `envoy/`), allowing the
    /// browser origin `cors_origin`.
    pub async fn start_with(envoy_config: &str, cors_origin: &str) -> Stack {
        let idp = DevIdp::start().await.unwrap();
        let pki = TestPki::generate().unwrap();
        let certs = tempfile::tempdir().unwrap();
        pki.write_to(certs.path()).unwrap();
        let mut config = tollgate_config(&idp);
        if envoy_config == FRONT_PROXY_TOLLGATE_MTLS {
            config.tls = Some(TlsFiles {
                cert: certs.path().join("tollgate.pem"),
                key: certs.path().join("tollgate-key.pem"),
                client_ca: Some(certs.path().join("ca.pem")),
            });
        }
        let tollgate = Server::start(config).await.unwrap();
        let echo = EchoUpstream::start(localhost(), pki.echo_server_config().unwrap())
            .await
            .unwrap();
        wait_ready(&tollgate).await;

        let config = render_envoy_config(
            envoy_config,
            &idp,
            tollgate.grpc_addr(),
            &echo,
            certs.path(),
            cors_origin,
        );
        let envoy = Envoy::start(&config)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        Stack {
            idp,
            tollgate: Some(tollgate),
            echo,
            envoy,
            pki,
            http: http_client(),
            certs,
        }
    }

    /// `http://<envoy>/<path>`.
    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }

    /// An access token from dev-idp's token endpoint for the demo client, with `scope`
    /// (space-separated; all of the client's scopes when empty).
    pub async fn token(&self, scope: &str) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !scope.is_empty() {
            form.append_pair("scope", scope);
        }
        let answer: Value = self
            .http
            .post(self.idp.token_url())
            .basic_auth("demo", Some("demo-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// Stops tollgate; Envoy stays up.
    pub async fn stop_tollgate(&mut self) {
        if let Some(server) = self.tollgate.take() {
            server.shutdown().await;
        }
    }

    /// The directory holding this run's certificates.
    pub fn cert_dir(&self) -> PathBuf {
        self.certs.path().to_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- envoy log ----\n{}---- end of envoy log ----",
                self.envoy.log()
            );
        }
    }
}

/// What the echo upstream received, parsed from its answer.
#[derive(Debug)]
pub struct Echoed {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Every header value, by lowercase name.
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Echoed {
    /// Parses the echo upstream's JSON answer.
    pub fn parse(body: &str) -> Echoed {
        let value: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("not an echo answer ({e}): {body}"));
        Echoed {
            method: value["method"].as_str().unwrap().to_owned(),
            path: value["path"].as_str().unwrap().to_owned(),
            headers: serde_json::from_value(value["headers"].clone()).unwrap(),
        }
    }

    /// Every value the upstream saw for header `name`, empty when absent.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .get(name)
            .map(|values| values.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// tollgate's config: `examples/demo.yaml` for `idp`, on ports chosen by the OS.
pub fn tollgate_config(idp: &DevIdp) -> Config {
    let path = testkit::workspace_root().join("examples/demo.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let port = idp.addr().port().to_string();
    let text = template::render(
        &text,
        &[
            ("IDP_PORT", &port),
            ("TOLLGATE_GRPC_PORT", "0"),
            ("TOLLGATE_ADMIN_PORT", "0"),
        ],
    )
    .unwrap();
    Config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

/// The Envoy config `name` from `envoy/`, with every placeholder filled for this stack
/// (`tollgate` is the address Envoy's tollgate cluster points at).
pub fn render_envoy_config(
    name: &str,
    idp: &DevIdp,
    tollgate: std::net::SocketAddr,
    echo: &EchoUpstream,
    cert_dir: &std::path::Path,
    cors_origin: &str,
) -> String {
    let path = testkit::workspace_root().join("envoy").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let idp_port = idp.addr().port().to_string();
    let tollgate_port = tollgate.port().to_string();
    let upstream_port = echo.addr().port().to_string();
    let cert_dir = cert_dir.to_str().unwrap();
    template::render(
        &text,
        &[
            ("ENVOY_PORT", "0"),
            ("ENVOY_ADMIN_PORT", "0"),
            ("IDP_PORT", &idp_port),
            ("TOLLGATE_PORT", &tollgate_port),
            ("UPSTREAM_PORT", &upstream_port),
            ("CERT_DIR", cert_dir),
            ("CORS_ORIGIN", cors_origin),
        ],
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A client that talks plain HTTP to loopback, ignoring any proxy settings.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `127.0.0.1:0`.
pub fn localhost() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Waits until tollgate's `/readyz` says every provider has keys.
async fn wait_ready(server: &Server) {
    let url = format!("http://{}/readyz", server.admin_addr());
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = client.get(&url).send().await;
        if answer.is_ok_and(|a| a.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "tollgate not ready after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
