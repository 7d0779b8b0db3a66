//! Running tollgate: the gRPC Check listener (with the standard gRPC health service and
//! server [`reflection`], plaintext or over [`tls`]), the admin listener, the key refresh
//! tasks and the config reloader, started together and stopped together.
//!
//! Listeners bind before [`Server::start`] returns, so a caller (or a test) can use the
//! bound addresses at once; keys load in the background and readiness says when.
//! Shutdown reports not-ready first, then stops accepting and lets in-flight Checks finish
//! within the configured grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::authorizer::Authorizer;
use crate::config::Config;
use crate::config::reload::Reloader;
use crate::jwks::{KeyStore, fetch};
use crate::service::CheckService;

pub mod reflection;
pub mod tls;

/// Concurrent Check streams one HTTP/2 connection may carry.
const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// The gRPC service name Envoy and Kubernetes health-check.
const CHECK_SERVICE: &str = "envoy.service.auth.v3.Authorization";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for key fetches could not be built.
    #[error("cannot build the key-fetching HTTP client")]
    Client(#[source] reqwest::Error),
    /// The gRPC server failed while running.
    #[error("grpc server failed")]
    Grpc(#[source] tonic::transport::Error),
    /// The admin server failed while running.
    #[error("admin server failed")]
    Admin(#[source] std::io::Error),
    /// The TLS files could not be loaded.
    #[error("cannot load the gRPC listener's TLS files")]
    Tls(#[source] tls::TlsError),
    /// The reflection service could not be built from its descriptor sets.
    #[error("cannot build the gRPC reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
}

/// What the admin listener and the health task read.
#[derive(Debug)]
pub struct State {
    /// The authorizer in force; a reload swaps it.
    pub authorizer: Arc<ArcSwap<Authorizer>>,
    /// Set at shutdown: readiness turns false before the listeners close.
    pub draining: AtomicBool,
}

impl State {
    /// Whether the server should receive traffic: not draining, every provider has keys.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire) && self.authorizer.load().keys().ready()
    }
}

/// A running tollgate.
#[derive(Debug)]
pub struct Server {
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    state: Arc<State>,
    reloader: Arc<Reloader>,
    grace: Duration,
    stop_accepting: CancellationToken,
    stop: CancellationToken,
    grpc: JoinHandle<Result<(), ServeError>>,
    admin: JoinHandle<Result<(), ServeError>>,
}

impl Server {
    /// Binds both listeners, starts key refresh and config reloading, and serves until
    /// [`Server::shutdown`].
    ///
    /// # Errors
    ///
    /// [`ServeError`] when a listener cannot bind, the TLS files cannot be loaded or the
    /// HTTP client cannot be built.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        let stop = CancellationToken::new();
        let stop_accepting = CancellationToken::new();
        let reflection_v1 = reflection::v1().map_err(ServeError::Reflection)?;
        let reflection_v1alpha = reflection::v1alpha().map_err(ServeError::Reflection)?;
        let (transport, tls) = match &config.tls {
            None => ("plaintext", None),
            Some(files) => {
                let settings = tls::start(files, &stop).await.map_err(ServeError::Tls)?;
                let transport = if files.client_ca.is_some() {
                    "mtls"
                } else {
                    "tls"
                };
                (transport, Some(settings))
            }
        };
        let client = fetch::client().map_err(ServeError::Client)?;
        let keys = Arc::new(KeyStore::new(config.providers.iter().cloned()));
        keys.spawn_refresh(&client, &stop);

        let grpc_listener = bind(config.grpc).await?;
        let admin_listener = bind(config.admin).await?;
        let grpc_addr = local_addr(&grpc_listener, config.grpc)?;
        let admin_addr = local_addr(&admin_listener, config.admin)?;
        let grace = config.shutdown_grace;
        let path = config.path.clone();

        let authorizer = Arc::new(ArcSwap::from_pointee(Authorizer::new(
            Arc::new(config),
            keys,
        )));
        let state = Arc::new(State {
            authorizer: authorizer.clone(),
            draining: AtomicBool::new(false),
        });
        let reloader = Arc::new(Reloader::new(
            &path,
            authorizer.clone(),
            client,
            stop.clone(),
        ));
        tokio::spawn(reloader.clone().watch());

        let (health, health_service) = tonic_health::server::health_reporter();
        tokio::spawn(report_health(state.clone(), health, stop.clone()));
        let service = AuthorizationServer::new(CheckService::new(authorizer));
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            // Backpressure instead of an unbounded queue: past this many Checks in flight
            // on one connection, HTTP/2 makes the client (Envoy) wait or open another.
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service);
        let grpc = tokio::spawn({
            let stop_accepting = stop_accepting.clone();
            async move {
                let stopped = stop_accepting.clone().cancelled_owned();
                let served = match tls {
                    Some(settings) => {
                        let incoming = tls::incoming(grpc_listener, settings, stop_accepting);
                        router.serve_with_incoming_shutdown(incoming, stopped).await
                    }
                    None => {
                        // The builder's tcp_nodelay applies only to listeners tonic binds
                        // itself; without it, Nagle's algorithm and delayed ACKs hold each
                        // small Check answer back by tens of milliseconds.
                        let incoming = TcpListenerStream::new(grpc_listener).map(|tcp| {
                            tcp.inspect(|tcp| {
                                let _ = tcp.set_nodelay(true);
                            })
                        });
                        router.serve_with_incoming_shutdown(incoming, stopped).await
                    }
                };
                served.map_err(ServeError::Grpc)
            }
        });
        let admin = tokio::spawn({
            let stop = stop.clone();
            let router = crate::admin::router(state.clone());
            async move {
                axum::serve(admin_listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .map_err(ServeError::Admin)
            }
        });
        tracing::info!(%grpc_addr, %admin_addr, transport, "tollgate listening");
        Ok(Self {
            grpc_addr,
            admin_addr,
            state,
            reloader,
            grace,
            stop_accepting,
            stop,
            grpc,
            admin,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The authorizer in force.
    pub fn authorizer(&self) -> Arc<Authorizer> {
        self.state.authorizer.load_full()
    }

    /// The config reloader, to reload on demand.
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// Waits until either listener fails.
    ///
    /// # Errors
    ///
    /// The first listener failure.
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        let result = tokio::select! {
            r = &mut self.grpc => r,
            r = &mut self.admin => r,
        };
        self.stop_accepting.cancel();
        self.stop.cancel();
        result.unwrap_or(Ok(()))
    }

    /// Reports not-ready, stops accepting, lets in-flight Checks finish within the grace
    /// period, then stops everything else.
    pub async fn shutdown(mut self) {
        self.state.draining.store(true, Ordering::Release);
        self.stop_accepting.cancel();
        if tokio::time::timeout(self.grace, &mut self.grpc)
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.grace, "checks still running after the grace period");
            self.grpc.abort();
        }
        self.stop.cancel();
        let _ = self.admin.await;
        tracing::info!("stopped");
    }
}

/// Keeps the gRPC health status of the Check service (and of the server as a whole, `""`)
/// in step with readiness.
async fn report_health(state: Arc<State>, health: HealthReporter, stop: CancellationToken) {
    let mut last = None;
    loop {
        let status = if state.ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            health.set_service_status(CHECK_SERVICE, status).await;
            health.set_service_status("", status).await;
            last = Some(status);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, ServeError> {
    listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })
}
