//! A mutual-TLS front for a plaintext TCP service: accepts TLS connections that present a
//! client certificate from the test CA, and relays their bytes to a backend.
//!
//! It stands in for a TLS listener that a service does not have yet, such as tollgate's
//! gRPC listener before it learns TLS, so that Envoy's mTLS cluster config
//! (`envoy/front-proxy-tollgate-mtls.yaml`) can be tested end to end. A client without a
//! certificate, or speaking plaintext, fails the handshake and is never relayed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running TLS front; stops (with its connections) when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsProxy {
    /// Binds `bind` and relays every accepted TLS connection to `backend`.
    ///
    /// # Errors
    ///
    /// If the listener cannot bind.
    pub async fn start(
        bind: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        backend: SocketAddr,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let task = tokio::spawn(serve(listener, TlsAcceptor::from(tls), backend));
        Ok(Self { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, backend: SocketAddr) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(relay(stream, acceptor.clone(), backend));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn relay(stream: TcpStream, acceptor: TlsAcceptor, backend: SocketAddr) {
    let Ok(Ok(mut tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
    else {
        return;
    };
    let Ok(mut plain) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = plain.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
}
