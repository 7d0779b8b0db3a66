//! TLS and mTLS on the gRPC listener: who gets a Check answer, config checks at load, and
//! certificate files reloaded without a restart.
//!
//! Every test makes its own CAs and certificates with rcgen; no key is ever committed.

// The helpers below run only inside tests: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::{Answer, get};
use tokio::io::AsyncWriteExt;
use tollgate::config::Config;
use tollgate::server::Server;
use tollgate::server::tls::POLL_INTERVAL;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;

#[tokio::test]
async fn client_with_a_certificate_from_the_client_ca_gets_a_check_answer() {
    let pki = Pki::new();
    let server = pki.start_mtls().await;

    let answer = check(&server, pki.client_tls(Some(&pki.client))).await;

    assert_eq!(answer.unwrap().grpc_code(), 0);
}

#[tokio::test]
async fn client_without_a_certificate_is_refused() {
    let pki = Pki::new();
    let server = pki.start_mtls().await;

    let refused = check(&server, pki.client_tls(None)).await;
    let accepted = check(&server, pki.client_tls(Some(&pki.client))).await;

    assert!(
        refused.unwrap_err().contains("CertificateRequired"),
        "a client without a certificate is told one is required"
    );
    assert!(
        accepted.is_ok(),
        "the listener stopped after a failed handshake"
    );
}

#[tokio::test]
async fn client_with_a_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let stranger = Ca::new("another CA").leaf("client.test", Role::Client);
    let server = pki.start_mtls().await;

    let refused = check(&server, pki.client_tls(Some(&stranger))).await;

    assert!(
        refused.unwrap_err().contains("UnknownCA"),
        "a client of another CA is told its CA is unknown"
    );
}

#[tokio::test]
async fn plaintext_client_is_refused() {
    let pki = Pki::new();
    let server = pki.start_mtls().await;

    let refused = check(&server, None).await;
    let accepted = check(&server, pki.client_tls(Some(&pki.client))).await;

    assert!(refused.is_err(), "a plaintext client got an answer");
    assert!(
        accepted.is_ok(),
        "the listener stopped after a plaintext client"
    );
}

#[tokio::test]
async fn without_client_ca_any_tls_client_gets_an_answer() {
    let pki = Pki::new();
    let server = pki.start(false).await;

    let answer = check(&server, pki.client_tls(None)).await;

    assert_eq!(answer.unwrap().grpc_code(), 0);
}

#[tokio::test]
async fn a_stalled_handshake_does_not_hold_up_other_clients() {
    let pki = Pki::new();
    let server = pki.start_mtls().await;
    let mut silent = tokio::net::TcpStream::connect(server.grpc_addr())
        .await
        .unwrap();
    silent.write_all(&[0x16, 0x03, 0x01]).await.unwrap();

    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        check(&server, pki.client_tls(Some(&pki.client))),
    )
    .await;

    assert_eq!(answer.expect("not held up").unwrap().grpc_code(), 0);
}

#[tokio::test]
async fn replaced_certificate_files_are_served_to_new_connections() {
    let pki = Pki::new();
    let server = pki.start_mtls().await;
    let before = pki.served_certificate(&server).await.unwrap();
    let renewed = pki.ca.leaf("localhost", Role::Server);

    pki.write_server_identity(&renewed);
    let after = wait_for_certificate(&pki, &server, &renewed).await;
    let answer = check(&server, pki.client_tls(Some(&pki.client))).await;

    assert_eq!(before, der(&pki.server.cert_pem));
    assert_eq!(after, der(&renewed.cert_pem));
    assert_eq!(answer.unwrap().grpc_code(), 0);
}

#[tokio::test]
async fn a_broken_certificate_file_keeps_the_previous_certificate() {
    let pki = Pki::new();
    let server = pki.start_mtls().await;

    std::fs::write(pki.dir.path().join("server.pem"), "not a certificate").unwrap();
    tokio::time::sleep(POLL_INTERVAL * 3).await;
    let served = pki.served_certificate(&server).await.unwrap();
    let answer = check(&server, pki.client_tls(Some(&pki.client))).await;

    assert_eq!(served, der(&pki.server.cert_pem));
    assert_eq!(answer.unwrap().grpc_code(), 0);
}

#[test]
fn missing_tls_files_are_refused_at_load_with_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(
        &path,
        "server:\n  tls: { cert: nope.pem, key: nope-key.pem, client_ca: nope-ca.pem }\n",
    )
    .unwrap();

    let error = Config::load(&path).unwrap_err().to_string();

    let file = |name: &str| dir.path().join(name).display().to_string();
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines.len(), 3, "{error}");
    assert!(lines[0].starts_with(&format!(
        "{}: server.tls.cert: cannot read {}: ",
        path.display(),
        file("nope.pem")
    )));
    assert!(lines[1].contains(&format!(
        "server.tls.key: cannot read {}",
        file("nope-key.pem")
    )));
    assert!(lines[2].contains(&format!(
        "server.tls.client_ca: cannot read {}",
        file("nope-ca.pem")
    )));
}

#[test]
fn tls_needs_both_cert_and_key() {
    let error = Config::parse(
        "server:\n  tls: { client_ca: ca.pem }\n",
        Path::new("t.yaml"),
    )
    .unwrap_err()
    .to_string();

    assert_eq!(
        error,
        "t.yaml: server.tls.cert: is required: a PEM file\n\
         t.yaml: server.tls.key: is required: a PEM file"
    );
}

#[test]
fn invalid_pem_and_mismatched_keys_are_refused_at_load() {
    let pki = Pki::new();
    let other = pki.ca.leaf("localhost", Role::Server);
    let dir = pki.dir.path();
    std::fs::write(dir.join("garbage.pem"), "hello").unwrap();
    std::fs::write(dir.join("other-key.pem"), &other.key_pem).unwrap();
    let load = |tls: &str| {
        let path = dir.join("tollgate.yaml");
        std::fs::write(&path, format!("server:\n  tls: {tls}\n")).unwrap();
        Config::load(&path).unwrap_err().to_string()
    };
    let shown = |name: &str| dir.join(name).display().to_string();

    let bad_cert = load("{ cert: garbage.pem, key: server-key.pem }");
    let bad_key = load("{ cert: server.pem, key: garbage.pem }");
    let mismatch = load("{ cert: server.pem, key: other-key.pem }");
    let bad_ca = load("{ cert: server.pem, key: server-key.pem, client_ca: garbage.pem }");

    assert!(bad_cert.ends_with(&format!(
        "server.tls.cert: {} holds no valid PEM CERTIFICATE: no items found",
        shown("garbage.pem")
    )));
    assert!(bad_key.ends_with(&format!(
        "server.tls.key: {} holds no valid PEM PRIVATE KEY",
        shown("garbage.pem")
    )));
    assert!(mismatch.ends_with(&format!(
        "server.tls.key: {} does not match the certificate",
        shown("other-key.pem")
    )));
    assert!(bad_ca.ends_with(&format!(
        "server.tls.client_ca: {} holds no valid PEM CERTIFICATE: no items found",
        shown("garbage.pem")
    )));
}

#[test]
fn tls_paths_resolve_against_the_config_file() {
    let pki = Pki::new();

    let config = Config::load(&pki.config_path(true)).unwrap();

    let tls = config.tls.expect("tls configured");
    assert_eq!(tls.cert, pki.dir.path().join("server.pem"));
    assert_eq!(tls.key, pki.dir.path().join("server-key.pem"));
    assert_eq!(tls.client_ca, Some(pki.dir.path().join("client-ca.pem")));
}

/// Checks an anonymous route over a new connection; `None` connects in plaintext.
async fn check(server: &Server, tls: Option<ClientTlsConfig>) -> Result<Answer, String> {
    let endpoint = match tls {
        Some(tls) => Endpoint::from_shared(format!("https://{}", server.grpc_addr()))
            .unwrap()
            .tls_config(tls)
            .unwrap(),
        None => Endpoint::from_shared(format!("http://{}", server.grpc_addr())).unwrap(),
    };
    let channel: Channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let answer = AuthorizationClient::new(channel)
        .check(get("/health").build())
        .await
        .map_err(|e| format!("check: {e:?}"))?;
    Ok(Answer(answer.into_inner()))
}

async fn wait_for_certificate(pki: &Pki, server: &Server, expected: &Leaf) -> Vec<u8> {
    let expected = der(&expected.cert_pem);
    let mut served = Vec::new();
    for _ in 0..60 {
        served = pki.served_certificate(server).await.unwrap();
        if served == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    served
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The CA, server and client certificates of one test, written to a temporary directory.
struct Pki {
    ca: Ca,
    server: Leaf,
    client: Leaf,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let ca = Ca::new("tollgate test CA");
        let server = ca.leaf("localhost", Role::Server);
        let client = ca.leaf("envoy.test", Role::Client);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-ca.pem"), &ca.cert_pem).unwrap();
        let pki = Self {
            ca,
            server,
            client,
            dir,
        };
        pki.write_server_identity(&pki.server);
        pki
    }

    fn write_server_identity(&self, leaf: &Leaf) {
        std::fs::write(self.dir.path().join("server.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(self.dir.path().join("server-key.pem"), &leaf.key_pem).unwrap();
    }

    fn config_path(&self, client_ca: bool) -> PathBuf {
        let client_ca = if client_ca {
            ", client_ca: client-ca.pem"
        } else {
            ""
        };
        let path = self.dir.path().join("tollgate.yaml");
        let yaml = format!(
            "server:\n  grpc: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  \
             tls: {{ cert: server.pem, key: server-key.pem{client_ca} }}\n\
             routes:\n  - match: {{ prefix: /health }}\n    allow: anonymous\n"
        );
        std::fs::write(&path, yaml).unwrap();
        path
    }

    async fn start(&self, client_ca: bool) -> Server {
        let config = Config::load(&self.config_path(client_ca)).unwrap();
        Server::start(config).await.unwrap()
    }

    async fn start_mtls(&self) -> Server {
        self.start(true).await
    }

    /// TLS settings of a client that trusts the CA and presents `identity`.
    fn client_tls(&self, identity: Option<&Leaf>) -> Option<ClientTlsConfig> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca.cert_pem))
            .domain_name("localhost");
        Some(match identity {
            Some(leaf) => tls.identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem)),
            None => tls,
        })
    }

    /// The leaf certificate the server presents to a new connection (DER).
    async fn served_certificate(&self, server: &Server) -> Result<Vec<u8>, std::io::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(der(&self.ca.cert_pem)))
            .unwrap();
        let chain = vec![CertificateDer::from(der(&self.client.cert_pem))];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(self.client.key_pem.as_bytes())
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

        let tcp = tokio::net::TcpStream::connect(server.grpc_addr()).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = connector.connect(name, tcp).await?;
        let (_, session) = stream.get_ref();
        let leaf = session
            .peer_certificates()
            .expect("server sent certificates")[0]
            .clone();
        Ok(leaf.as_ref().to_vec())
    }
}

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
struct Leaf {
    cert_pem: String,
    key_pem: String,
}

#[derive(Clone, Copy)]
enum Role {
    Server,
    Client,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert_pem = params.self_signed(&key).unwrap().pem();
        Self {
            cert_pem,
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, name: &str, role: Role) -> Leaf {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match role {
            Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
