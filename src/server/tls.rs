//! TLS on the gRPC listener: the server certificate and key, the optional client CA that
//! makes client certificates required, and reloading them when the files change.
//!
//! [`TlsFiles::server_config`] turns the PEM files into a rustls `ServerConfig` (the config
//! check calls it too, so a broken file is refused at load). [`incoming`] accepts TCP
//! connections and runs each handshake on its own task under a timeout, so a slow or
//! failing client never holds up the accept loop; finished TLS streams go to tonic.
//! [`watch`] polls the files and swaps in a new `ServerConfig` for new connections, so a
//! renewed certificate or a new client CA needs no restart. What each connection may call
//! is left to the gRPC services; the client certificate is only verified, never read.

use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// How often the certificate files are read for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; further connections wait in the listen backlog.
const MAX_HANDSHAKES: usize = 256;

/// The PEM files of `server.tls`, with paths resolved against the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to; when set, every client
    /// must present one.
    pub client_ca: Option<PathBuf>,
}

/// Which of the [`TlsFiles`] a [`TlsError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    /// `server.tls.cert`
    Cert,
    /// `server.tls.key`
    Key,
    /// `server.tls.client_ca`
    ClientCa,
}

impl TlsFile {
    /// The config key of this file, as in `server.tls.cert`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Cert => "server.tls.cert",
            Self::Key => "server.tls.key",
            Self::ClientCa => "server.tls.client_ca",
        }
    }
}

impl fmt::Display for TlsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Why the TLS files could not be used. Messages name the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM item of the expected kind, or broken PEM.
    #[error("{} holds no valid PEM {what}", path.display())]
    Pem {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What was looked for (`CERTIFICATE`, `PRIVATE KEY`).
        what: &'static str,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The key does not belong to the certificate.
    #[error("{} does not match the certificate", path.display())]
    KeyMismatch {
        /// Its path.
        path: PathBuf,
    },
    /// The key or certificate cannot be used by rustls.
    #[error("{} cannot be used for TLS", path.display())]
    Unusable {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// The client CA file holds no usable CA certificate.
    #[error("{} holds no usable CA certificate", path.display())]
    ClientCa {
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

impl TlsError {
    /// The message followed by its cause, except for a key file's PEM error, whose text
    /// might quote the file.
    pub fn detail(&self) -> String {
        let cause: Option<&dyn std::error::Error> = match self {
            Self::Read { source, .. } => Some(source),
            Self::Pem { file, source, .. } if *file != TlsFile::Key => Some(source),
            Self::Pem { .. } | Self::KeyMismatch { .. } => None,
            Self::Unusable { source, .. } => Some(source),
            Self::ClientCa { source, .. } => Some(source),
        };
        match cause {
            Some(cause) => format!("{self}: {cause}"),
            None => self.to_string(),
        }
    }

    /// The file the error is about.
    pub fn file(&self) -> TlsFile {
        match self {
            Self::Read { file, .. } | Self::Pem { file, .. } | Self::Unusable { file, .. } => *file,
            Self::KeyMismatch { .. } => TlsFile::Key,
            Self::ClientCa { .. } => TlsFile::ClientCa,
        }
    }
}

impl TlsFiles {
    /// Reads the files and builds the rustls settings: the aws-lc-rs provider, TLS 1.2 and
    /// 1.3, ALPN `h2`, and client certificates required when `client_ca` is set.
    ///
    /// # Errors
    ///
    /// Every problem found (at least one), at most one per file.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Vec<TlsError>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = read(TlsFile::Cert, &self.cert).and_then(|pem| certificates(&self.cert, &pem));
        let key = read(TlsFile::Key, &self.key).and_then(|pem| private_key(&self.key, &pem));
        let client_ca = self
            .client_ca
            .as_deref()
            .map(|path| read(TlsFile::ClientCa, path).and_then(|pem| client_roots(path, &pem)));

        let mut errors: Vec<TlsError> = Vec::new();
        let certs = certs.map_err(|e| errors.push(e)).ok();
        let key = key.map_err(|e| errors.push(e)).ok();
        let client_ca = client_ca.transpose().map_err(|e| errors.push(e)).ok();
        let (Some(certs), Some(key), Some(client_ca)) = (certs, key, client_ca) else {
            return Err(errors);
        };

        self.build(provider, certs, key, client_ca)
            .map(Arc::new)
            .map_err(|e| vec![e])
    }

    fn build(
        &self,
        provider: Arc<CryptoProvider>,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_ca: Option<RootCertStore>,
    ) -> Result<ServerConfig, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Unusable {
                file: TlsFile::Cert,
                path: self.cert.clone(),
                source,
            })?;
        let builder = match (client_ca, &self.client_ca) {
            (Some(roots), Some(path)) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|source| TlsError::ClientCa {
                            path: path.clone(),
                            source,
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };

        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|source| match source {
                rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                    path: self.key.clone(),
                },
                source => TlsError::Unusable {
                    file: TlsFile::Key,
                    path: self.key.clone(),
                    source,
                },
            })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// The files' current contents, to notice a change.
    async fn contents(&self) -> Contents {
        let mut contents = Vec::with_capacity(3);
        for path in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            contents.push(match path {
                Some(path) => tokio::fs::read(path).await.ok(),
                None => None,
            });
        }
        contents
    }
}

/// Loads the files and starts [`watch`]ing them; the result holds the settings in force.
///
/// # Errors
///
/// The first problem with the files.
pub async fn start(
    files: &TlsFiles,
    stop: &CancellationToken,
) -> Result<Arc<ArcSwap<ServerConfig>>, TlsError> {
    // Read before loading: a file written in between then shows up as a change.
    let loaded = files.contents().await;
    let config = files.server_config().map_err(|errors| {
        let mut errors = errors.into_iter();
        errors
            .next()
            .expect("server_config reports at least one error when it fails")
    })?;
    let config = Arc::new(ArcSwap::new(config));
    tokio::spawn(watch(files.clone(), loaded, config.clone(), stop.clone()));
    Ok(config)
}

/// The bytes of each file (`None` when unreadable), in [`TlsFiles`] order.
type Contents = Vec<Option<Vec<u8>>>;

/// Accepts TCP connections on `listener` and yields those whose TLS handshake, with the
/// settings `config` holds at accept time, succeeds within [`HANDSHAKE_TIMEOUT`].
///
/// A failed or timed-out handshake is logged at debug and dropped; accepting goes on. The
/// listener closes when `stop` is cancelled.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ArcSwap<ServerConfig>>,
    stop: CancellationToken,
) -> ReceiverStream<Result<TlsStream<TcpStream>, Infallible>> {
    let (streams, incoming) = mpsc::channel(16);
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let permit = tokio::select! {
                () = stop.cancelled() => return,
                permit = handshakes.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let (tcp, peer) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.load_full());
            let streams = streams.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(permit);
                match handshake {
                    Ok(Ok(stream)) => {
                        let _ = streams.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "tls handshake failed"),
                    Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(incoming)
}

/// Polls the files every [`POLL_INTERVAL`] until `stop` is cancelled, and swaps a new
/// `ServerConfig` into `config` once their contents differ from `loaded` and have stayed
/// the same for a whole poll (so a cert and key written one after the other are read as a
/// pair). Contents that do not load are logged once at warn; the settings in force keep
/// serving.
async fn watch(
    files: TlsFiles,
    loaded: Contents,
    config: Arc<ArcSwap<ServerConfig>>,
    stop: CancellationToken,
) {
    let mut last = loaded;
    let mut pending = None;
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = files.contents().await;
        if now == last {
            pending = None;
            continue;
        }
        if pending.as_ref() != Some(&now) {
            pending = Some(now);
            continue;
        }
        last = now;
        pending = None;
        match files.server_config() {
            Ok(new) => {
                config.store(new);
                tracing::info!(cert = %files.cert.display(), "tls certificates reloaded");
            }
            Err(errors) => {
                for error in errors {
                    tracing::warn!(
                        file = error.file().key(),
                        error = error.detail(),
                        "tls reload rejected; the previous certificates keep serving",
                    );
                }
            }
        }
    }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        file,
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pem_certificates(TlsFile::Cert, path, pem)
}

fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| TlsError::Pem {
        file: TlsFile::Key,
        path: path.to_owned(),
        what: "PRIVATE KEY",
        source,
    })
}

fn client_roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in pem_certificates(TlsFile::ClientCa, path, pem)? {
        roots.add(cert).map_err(|source| TlsError::Unusable {
            file: TlsFile::ClientCa,
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

fn pem_certificates(
    file: TlsFile,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |source| TlsError::Pem {
        file,
        path: path.to_owned(),
        what: "CERTIFICATE",
        source,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    if certs.is_empty() {
        return Err(fail(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}
