//! A throwaway certificate authority and the certificates the demo and the tests use.
//!
//! Every run makes a new CA, signs the certificates below with it, and forgets the CA's
//! private key, so nothing a run leaves behind can sign anything else. Keys are ECDSA
//! P-256. The Envoy configs in `envoy/` name the files of [`TestPki::write_to`].
//!
//! | file | what | names |
//! | --- | --- | --- |
//! | `ca.pem` | the CA that every party trusts | |
//! | `echo.pem`, `echo-key.pem` | the echo upstream's server certificate | [`ECHO_HOST`] |
//! | `envoy-client.pem`, `envoy-client-key.pem` | Envoy's client certificate | [`ENVOY_HOST`] |
//! | `tollgate.pem`, `tollgate-key.pem` | tollgate's server certificate | [`TOLLGATE_HOST`] |
//!
//! Server certificates also name `localhost` and `127.0.0.1`, so curl can reach them
//! directly.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// DNS name in the echo upstream's certificate; Envoy checks it (and sends it as SNI).
pub const ECHO_HOST: &str = "echo.tollgate.test";
/// DNS name in Envoy's client certificate.
pub const ENVOY_HOST: &str = "envoy.tollgate.test";
/// DNS name in tollgate's server certificate, for the mTLS variant of the tollgate cluster.
pub const TOLLGATE_HOST: &str = "authz.tollgate.test";

/// File name of the CA certificate.
pub const CA_FILE: &str = "ca.pem";

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate.
    pub cert_pem: String,
    /// Its PKCS#8 private key.
    pub key_pem: String,
}

impl CertifiedKey {
    /// Key and certificate in one PEM text, as HTTP clients take a client identity.
    pub fn identity_pem(&self) -> String {
        format!("{}{}", self.key_pem, self.cert_pem)
    }
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertifiedKey { .. }")
    }
}

/// The CA certificate and every certificate signed by it for one run.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate (its key is gone once [`TestPki::generate`] returns).
    pub ca_pem: String,
    /// The echo upstream's server certificate.
    pub echo: CertifiedKey,
    /// Envoy's client certificate, presented to the upstream and to tollgate.
    pub envoy_client: CertifiedKey,
    /// tollgate's server certificate.
    pub tollgate: CertifiedKey,
}

impl TestPki {
    /// Makes a new CA and signs the three certificates with it.
    ///
    /// # Errors
    ///
    /// If key generation or signing fails.
    pub fn generate() -> anyhow::Result<TestPki> {
        let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
        let mut ca = CertificateParams::new(Vec::new()).context("CA parameters")?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, "tollgate test CA (throwaway)");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = ca.self_signed(&ca_key).context("cannot sign the CA")?.pem();
        let issuer = Issuer::new(ca, ca_key);

        Ok(TestPki {
            ca_pem,
            echo: leaf(&issuer, ECHO_HOST, Role::Server)?,
            envoy_client: leaf(&issuer, ENVOY_HOST, Role::Client)?,
            tollgate: leaf(&issuer, TOLLGATE_HOST, Role::Server)?,
        })
    }

    /// Writes the files of the table in the module docs into `dir` (keys readable by the
    /// owner only).
    ///
    /// # Errors
    ///
    /// If a file cannot be written.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write(&dir.join(CA_FILE), &self.ca_pem, false)?;
        for (name, pair) in [
            ("echo", &self.echo),
            ("envoy-client", &self.envoy_client),
            ("tollgate", &self.tollgate),
        ] {
            write(&dir.join(format!("{name}.pem")), &pair.cert_pem, false)?;
            write(&dir.join(format!("{name}-key.pem")), &pair.key_pem, true)?;
        }
        Ok(())
    }

    /// The echo upstream's TLS settings: its certificate, and client certificates required
    /// and checked against the CA.
    ///
    /// # Errors
    ///
    /// If the PEM texts do not parse.
    pub fn echo_server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        server_config(
            &self.echo.cert_pem,
            &self.echo.key_pem,
            &self.ca_pem,
            Alpn::Http1,
        )
    }

    /// tollgate's TLS settings for gRPC: its certificate, ALPN `h2`, and client
    /// certificates required and checked against the CA.
    ///
    /// # Errors
    ///
    /// If the PEM texts do not parse.
    pub fn tollgate_server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        server_config(
            &self.tollgate.cert_pem,
            &self.tollgate.key_pem,
            &self.ca_pem,
            Alpn::Http2,
        )
    }
}

/// The application protocol a TLS server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1`.
    Http1,
    /// `h2`, as gRPC needs.
    Http2,
}

/// TLS settings of a server that presents `cert_pem`, requires a client certificate
/// issued by `client_ca_pem`, and speaks `alpn`.
///
/// # Errors
///
/// If the PEM texts do not parse or the key does not fit the certificate.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
    alpn: Alpn,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("cannot parse the server certificate")?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("cannot parse the server key")?;

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        roots
            .add(cert.context("cannot parse the client CA")?)
            .context("cannot use the client CA")?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .context("cannot build the client certificate verifier")?;

    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the key does not fit the certificate")?;
    config.alpn_protocols = vec![match alpn {
        Alpn::Http1 => b"http/1.1".to_vec(),
        Alpn::Http2 => b"h2".to_vec(),
    }];
    Ok(Arc::new(config))
}

#[derive(Clone, Copy)]
enum Role {
    Server,
    Client,
}

fn leaf(issuer: &Issuer<'_, KeyPair>, host: &str, role: Role) -> anyhow::Result<CertifiedKey> {
    let mut names = vec![host.to_owned()];
    if matches!(role, Role::Server) {
        names.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
    }
    let mut params = CertificateParams::new(names).context("certificate names")?;
    params.distinguished_name.push(DnType::CommonName, host);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match role {
        Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];

    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("cannot sign the certificate of {host}"))?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn write(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write as _;

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_complete_and_keys_are_private() {
        let pki = TestPki::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();

        pki.write_to(dir.path()).unwrap();

        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ca.pem",
                "echo-key.pem",
                "echo.pem",
                "envoy-client-key.pem",
                "envoy-client.pem",
                "tollgate-key.pem",
                "tollgate.pem"
            ]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("echo-key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn server_configs_build() {
        let pki = TestPki::generate().unwrap();

        assert!(pki.echo_server_config().is_ok());
        assert!(pki.tollgate_server_config().is_ok());
    }
}
