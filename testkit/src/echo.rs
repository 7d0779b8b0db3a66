//! The echo upstream: an HTTPS server that requires a client certificate and answers every
//! request with what it received, as JSON.
//!
//! It stands for the service behind Envoy. A test or the demo reads its answer to see
//! exactly which headers Envoy forwarded (the correlation id and claim headers that
//! tollgate added, and that a client's forged copies and the token did not get through):
//!
//! ```json
//! { "method": "GET", "path": "/orders/1", "headers": { "x-auth-sub": ["demo"] } }
//! ```
//!
//! Header names are lowercase; every name maps to the list of its values in arrival order,
//! so a forged duplicate would show as a second value.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running echo upstream; stops (with its connections) when dropped.
#[derive(Debug)]
pub struct EchoUpstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl EchoUpstream {
    /// Binds `bind` and serves HTTPS with `tls` on a task of the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// If the listener cannot bind.
    pub async fn start(bind: SocketAddr, tls: Arc<rustls::ServerConfig>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let requests = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(
            listener,
            TlsAcceptor::from(tls),
            Arc::clone(&requests),
        ));
        Ok(Self {
            addr,
            requests,
            task,
        })
    }

    /// How many requests it has answered, so a test can tell that a denied request never
    /// reached the upstream.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections until the task is aborted; aborting drops the [`JoinSet`] and with
/// it every open connection.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor, requests: Arc<AtomicUsize>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, acceptor.clone(), Arc::clone(&requests)));
                }
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One connection: the TLS handshake (which refuses clients without a certificate from the
/// CA), then HTTP/1.1 until the client closes.
async fn connection(stream: TcpStream, acceptor: TlsAcceptor, requests: Arc<AtomicUsize>) {
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(
            TokioIo::new(tls),
            service_fn(|request| {
                requests.fetch_add(1, Ordering::SeqCst);
                echo(request)
            }),
        )
        .await;
}

/// Answers with the request's method, path and headers as pretty-printed JSON.
async fn echo(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut headers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.entry(name.as_str()).or_default().push(value);
    }
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let answer = serde_json::json!({
        "method": request.method().as_str(),
        "path": path,
        "headers": headers,
    });

    let mut body = serde_json::to_vec_pretty(&answer).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
