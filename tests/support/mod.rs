//! Test harness: the real tollgate server on loopback, a gRPC client for Check, request
//! builders, and readers for the answer.
//!
//! The identity provider is `dev_idp::DevIdp`, a real HTTP server in the test process.

// Each test binary uses part of the harness; a panic here is a failed test.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use dev_idp::DevIdp;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use serde_json::{Value, json};
use tollgate::config::Config;
use tollgate::server::Server;
use tonic::transport::Channel;

pub const AUDIENCE: &str = "api://orders";

/// A config with one provider (`idp`, by discovery) and the `orders` policy and route.
pub fn config(idp: &DevIdp) -> String {
    format!(
        r#"
server:
  grpc: 127.0.0.1:0
  admin: 127.0.0.1:0
providers:
  idp:
    issuer: {issuer}
    discovery: {discovery}
    algorithms: [RS256, ES256, PS256, EdDSA]
    refetch_cooldown: 30s
policies:
  orders:
    provider: idp
    audiences: [{AUDIENCE}]
    scopes: {{ all: [orders.read] }}
    forward_claims: {{ sub: x-auth-sub, scope: x-auth-scopes }}
routes:
  - match: {{ prefix: /orders }}
    policy: orders
  - match: {{ prefix: /health }}
    allow: anonymous
"#,
        issuer = idp.issuer(),
        discovery = idp.discovery_url(),
    )
}

/// The real server and a connected Check client.
pub struct TestServer {
    pub server: Server,
    client: AuthorizationClient<Channel>,
}

impl TestServer {
    /// Starts on the config text and waits until every provider has keys.
    pub async fn start(yaml: &str) -> Self {
        let server = Self::start_unready(yaml).await;
        server.wait_ready().await;
        server
    }

    /// Starts without waiting for keys.
    pub async fn start_unready(yaml: &str) -> Self {
        let config = Config::parse(yaml, Path::new("test.yaml")).expect("test config is valid");
        Self::start_config(config).await
    }

    /// Starts on a checked config without waiting for keys.
    pub async fn start_config(config: Config) -> Self {
        let server = Server::start(config).await.expect("server starts");
        let url = format!("http://{}", server.grpc_addr());
        let client = AuthorizationClient::connect(url)
            .await
            .expect("client connects");
        Self { server, client }
    }

    pub async fn wait_ready(&self) {
        let authorizer = self.server.authorizer();
        for _ in 0..500 {
            if authorizer.keys().ready() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("providers did not load keys within 5 s");
    }

    pub async fn check(&self, request: Req) -> Answer {
        let response = self
            .client
            .clone()
            .check(request.build())
            .await
            .expect("check rpc ok");
        Answer(response.into_inner())
    }

    /// GETs an admin path and returns status and body.
    pub async fn admin(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.server.admin_addr());
        let response = reqwest::get(url).await.expect("admin listener answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("admin body"))
    }
}

/// A Check request under construction.
#[derive(Clone, Debug)]
pub struct Req {
    method: String,
    path: String,
    host: String,
    headers: Vec<(String, Vec<u8>)>,
    raw: bool,
    policy: Option<String>,
    request_id: String,
}

pub fn get(path: &str) -> Req {
    Req {
        method: "GET".into(),
        path: path.into(),
        host: "api.example.test".into(),
        headers: Vec::new(),
        raw: false,
        policy: None,
        request_id: String::new(),
    }
}

impl Req {
    pub fn method(mut self, method: &str) -> Self {
        self.method = method.into();
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.as_bytes().to_vec()));
        self
    }

    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.into(), value.to_vec()));
        self
    }

    /// Sends headers as Envoy does with `encode_raw_headers: true`.
    pub fn raw_headers(mut self) -> Self {
        self.raw = true;
        self
    }

    /// Names the policy as Envoy's per-route `context_extensions` do.
    pub fn policy(mut self, name: &str) -> Self {
        self.policy = Some(name.into());
        self
    }

    pub fn request_id(mut self, id: &str) -> Self {
        self.request_id = id.into();
        self
    }

    pub fn build(self) -> CheckRequest {
        let mut http = HttpRequest {
            id: self.request_id,
            method: self.method,
            path: self.path,
            host: self.host,
            ..Default::default()
        };
        if self.raw {
            let headers = self
                .headers
                .into_iter()
                .map(|(key, raw_value)| HeaderValue {
                    key,
                    raw_value,
                    ..Default::default()
                })
                .collect();
            http.header_map = Some(HeaderMap { headers });
        } else {
            // Envoy merges repeated headers with a comma.
            let mut merged: HashMap<String, String> = HashMap::new();
            for (key, value) in self.headers {
                let value = String::from_utf8_lossy(&value).into_owned();
                merged
                    .entry(key)
                    .and_modify(|v| *v = format!("{v},{value}"))
                    .or_insert(value);
            }
            http.headers = merged;
        }
        let context_extensions = self
            .policy
            .map(|p| HashMap::from([("policy".to_owned(), p)]))
            .unwrap_or_default();
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(http),
                    ..Default::default()
                }),
                context_extensions,
                ..Default::default()
            }),
        }
    }
}

/// Envoy's view of a Check answer.
#[derive(Clone, Debug)]
pub struct Answer(pub CheckResponse);

impl Answer {
    /// gRPC code of `CheckResponse.status`.
    pub fn grpc_code(&self) -> i32 {
        self.0.status.as_ref().expect("status is always set").code
    }

    /// The HTTP status the client sees (200 for an allow).
    pub fn status(&self) -> u16 {
        match self.0.http_response.as_ref().expect("http_response set") {
            HttpResponse::OkResponse(_) => 200,
            HttpResponse::DeniedResponse(d) => d.status.as_ref().unwrap().code as u16,
            HttpResponse::ErrorResponse(_) => panic!("error response"),
        }
    }

    pub fn allowed(&self) -> bool {
        self.grpc_code() == 0
    }

    /// The reason code from dynamic metadata (`""` for an allow).
    pub fn reason(&self) -> String {
        self.metadata("reason").unwrap_or_default()
    }

    pub fn metadata(&self, key: &str) -> Option<String> {
        let fields = &self.0.dynamic_metadata.as_ref()?.fields;
        match fields.get(key)?.kind.as_ref()? {
            Kind::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A header of a deny, or one to set upstream on an allow.
    pub fn header(&self, name: &str) -> Option<String> {
        let headers = match self.0.http_response.as_ref()? {
            HttpResponse::OkResponse(ok) => &ok.headers,
            HttpResponse::DeniedResponse(d) => &d.headers,
            HttpResponse::ErrorResponse(_) => return None,
        };
        let found: Vec<_> = headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .filter(|h| h.key == name)
            .collect();
        assert!(found.len() <= 1, "header {name} set twice");
        found.first().map(|h| h.value.clone())
    }

    /// Whether every header is set with overwrite, never appended.
    #[allow(deprecated)]
    pub fn headers_overwrite(&self) -> bool {
        let headers = match self.0.http_response.as_ref().unwrap() {
            HttpResponse::OkResponse(ok) => ok
                .headers
                .iter()
                .chain(&ok.response_headers_to_add)
                .collect::<Vec<_>>(),
            HttpResponse::DeniedResponse(d) => d.headers.iter().collect(),
            HttpResponse::ErrorResponse(_) => Vec::new(),
        };
        headers
            .iter()
            .all(|h| h.append_action == 2 && h.append.is_none())
    }

    /// A header an allow sends back to the client.
    pub fn response_header(&self, name: &str) -> Option<String> {
        match self.0.http_response.as_ref()? {
            HttpResponse::OkResponse(ok) => ok
                .response_headers_to_add
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key == name)
                .map(|h| h.value.clone()),
            _ => None,
        }
    }

    pub fn removed(&self) -> Vec<String> {
        match self.0.http_response.as_ref() {
            Some(HttpResponse::OkResponse(ok)) => ok.headers_to_remove.clone(),
            _ => Vec::new(),
        }
    }

    pub fn challenge(&self) -> Option<String> {
        self.header("www-authenticate")
    }

    /// The `error` parameter of the challenge.
    pub fn challenge_error(&self) -> Option<String> {
        let challenge = self.challenge()?;
        let start = challenge.find("error=\"")? + 7;
        let end = challenge[start..].find('"')? + start;
        Some(challenge[start..end].to_owned())
    }

    pub fn body(&self) -> Value {
        match self.0.http_response.as_ref() {
            Some(HttpResponse::DeniedResponse(d)) => {
                serde_json::from_str(&d.body).expect("json body")
            }
            _ => Value::Null,
        }
    }
}

/// Claims of a valid token for the `orders` route, by `idp`.
pub fn valid_claims(idp: &DevIdp) -> Value {
    let mut claims = idp.claims();
    claims["aud"] = json!(AUDIENCE);
    claims["scope"] = json!("orders.read");
    claims
}

/// A valid token for the `orders` route.
pub fn valid_token(idp: &DevIdp) -> String {
    idp.mint(&valid_claims(idp))
}

/// Merges `changes` into `claims`; a `null` removes the claim.
pub fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

/// Now, as the server's clock reads it.
pub fn now() -> i64 {
    tollgate::now()
}
