//! What the benches share: the tollgate config they run, Envoy-shaped Check requests, and
//! tokens minted by dev-idp with each of its algorithms.

// Each bench binary uses part of this module.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use anyhow::{Context as _, bail};
use dev_idp::{DevIdp, KeyAlg};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use serde_json::{Value, json};

/// The audience of the bench policy.
pub const AUDIENCE: &str = "api://orders";

/// The name of the bench policy, as Envoy's `context_extensions` name it.
pub const POLICY: &str = "orders";

/// A tollgate config with one provider (`idp`, by discovery), the policy `orders`
/// (audience, scope `orders.read`, two forwarded claims) and a verified-token cache of
/// `cache_bytes` (0 turns it off).
pub fn tollgate_yaml(
    idp: &DevIdp,
    grpc: SocketAddr,
    admin: SocketAddr,
    cache_bytes: u64,
) -> String {
    format!(
        r#"
server:
  grpc: {grpc}
  admin: {admin}
providers:
  idp:
    issuer: {issuer}
    discovery: {discovery}
    algorithms: [RS256, ES256, EdDSA]
policies:
  {POLICY}:
    provider: idp
    audiences: [{AUDIENCE}]
    scopes: {{ all: [orders.read] }}
    forward_claims: {{ sub: x-auth-sub, scope: x-auth-scopes }}
routes:
  - match: {{ prefix: /orders }}
    policy: {POLICY}
token_cache:
  max_bytes: {cache_bytes}
"#,
        issuer = idp.issuer(),
        discovery = idp.discovery_url(),
    )
}

/// A Check request as Envoy's ext_authz filter sends it for `GET /orders/42` with a
/// bearer token: pseudo-headers and the usual client headers in the merged map, a request
/// id, and the policy named in `context_extensions`.
pub fn check_request(token: &str) -> CheckRequest {
    let headers: HashMap<String, String> = [
        (":authority", "api.example.test"),
        (":method", "GET"),
        (":path", "/orders/42"),
        (":scheme", "http"),
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "0b8c3c7e-5a57-4c1b-9d3e-4c1f6a2b9e10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("authorization".to_owned(), format!("Bearer {token}"))])
    .collect();
    let http = HttpRequest {
        id: "8437262948261".into(),
        method: "GET".into(),
        path: "/orders/42".into(),
        host: "api.example.test".into(),
        scheme: "http".into(),
        protocol: "HTTP/1.1".into(),
        headers,
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            context_extensions: HashMap::from([("policy".to_owned(), POLICY.to_owned())]),
            ..Default::default()
        }),
    }
}

/// The kid of a published dev-idp key for each algorithm, adding keys as needed.
#[derive(Clone, Debug)]
pub struct Kids {
    /// RS256 (dev-idp's first key).
    pub rs256: String,
    /// ES256.
    pub es256: String,
    /// EdDSA (Ed25519).
    pub eddsa: String,
}

impl Kids {
    /// Publishes an ES256 and an EdDSA key beside the first (RS256) key.
    pub fn publish(idp: &DevIdp) -> Self {
        Self {
            rs256: idp.signing_kid(),
            es256: idp.add_key(KeyAlg::Es256),
            eddsa: idp.add_key(KeyAlg::EdDsa),
        }
    }
}

/// A valid token for the bench policy, signed by key `kid` with algorithm `alg`; every
/// call gives a different token (fresh `jti`).
pub fn mint(idp: &DevIdp, kid: &str, alg: KeyAlg) -> String {
    let header = json!({ "alg": alg.as_str(), "typ": "JWT", "kid": kid });
    idp.mint_with_header(kid, &header, &claims(idp))
}

/// dev-idp's valid claims (audience `api://orders`, scope `orders.read`), as a typical
/// access token carries them.
pub fn claims(idp: &DevIdp) -> Value {
    let mut claims = idp.claims();
    claims["aud"] = json!(AUDIENCE);
    claims["scope"] = json!("orders.read");
    claims
}

/// A free loopback port, found by binding port 0 and letting go of it.
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback is available");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The machine's 1, 5 and 15 minute load averages, to print beside figures taken on a
/// shared machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// User plus system CPU time of a process, µs.
pub fn cpu_micros(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the 3rd field, so
    // utime and stime (14th, 15th) are the 12th and 13th after it.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, 100 on every mainstream build.
    Some(ticks * 10_000)
}

/// The constant-OK Check server: what the transport alone costs.
#[derive(Debug, Default)]
pub struct ConstantOk;

#[tonic::async_trait]
impl Authorization for ConstantOk {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(rpc::Status {
                code: 0,
                ..Default::default()
            }),
            // As tollgate's `strip_token` does, so the upstream sees the same request.
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers_to_remove: vec!["authorization".into()],
                ..Default::default()
            })),
            dynamic_metadata: None,
        }))
    }
}

/// Serves [`ConstantOk`] as tollgate serves Check: Tokio's default multi-threaded
/// runtime, HTTP/2 with `TCP_NODELAY`.
pub fn serve_constant_ok(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("refusing to listen on non-loopback {addr}");
    }
    tokio::runtime::Runtime::new()?.block_on(async {
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(AuthorizationServer::new(ConstantOk))
            .serve(addr)
            .await
            .context("constant-OK server failed")
    })
}
