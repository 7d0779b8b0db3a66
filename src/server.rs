//! Running tollgate: the gRPC Check listener, the admin listener, and the key refresh
//! tasks, started together and stopped together.
//!
//! Listeners bind before [`Server::start`] returns, so a caller (or a test) can use the
//! bound addresses at once; keys load in the background and `/readyz` says when.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::authorizer::Authorizer;
use crate::config::Config;
use crate::jwks::{KeyStore, fetch};
use crate::service::CheckService;

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
}

/// A running tollgate.
#[derive(Debug)]
pub struct Server {
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    authorizer: Arc<ArcSwap<Authorizer>>,
    stop: CancellationToken,
    grpc: JoinHandle<Result<(), ServeError>>,
    admin: JoinHandle<Result<(), ServeError>>,
}

impl Server {
    /// Binds both listeners, starts key refresh, and serves until [`Server::shutdown`].
    ///
    /// # Errors
    ///
    /// [`ServeError`] when a listener cannot bind or the HTTP client cannot be built.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        let stop = CancellationToken::new();
        let client = fetch::client().map_err(ServeError::Client)?;
        let keys = Arc::new(KeyStore::new(config.providers.iter().cloned()));
        keys.spawn_refresh(&client, &stop);

        let grpc_listener = bind(config.grpc).await?;
        let admin_listener = bind(config.admin).await?;
        let grpc_addr = local_addr(&grpc_listener, config.grpc)?;
        let admin_addr = local_addr(&admin_listener, config.admin)?;

        let authorizer = Arc::new(ArcSwap::from_pointee(Authorizer::new(
            Arc::new(config),
            keys,
        )));
        let service = AuthorizationServer::new(CheckService::new(authorizer.clone()));
        let grpc = tokio::spawn({
            let stop = stop.clone();
            async move {
                tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(grpc_listener),
                        stop.cancelled_owned(),
                    )
                    .await
                    .map_err(ServeError::Grpc)
            }
        });
        let admin = tokio::spawn({
            let stop = stop.clone();
            let router = crate::admin::router(authorizer.clone());
            async move {
                axum::serve(admin_listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .map_err(ServeError::Admin)
            }
        });
        tracing::info!(%grpc_addr, %admin_addr, "tollgate listening");
        Ok(Self {
            grpc_addr,
            admin_addr,
            authorizer,
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
        self.authorizer.load_full()
    }

    /// Waits until either listener fails or the server is shut down.
    ///
    /// # Errors
    ///
    /// The first listener failure.
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        let result = tokio::select! {
            r = &mut self.grpc => r,
            r = &mut self.admin => r,
        };
        self.stop.cancel();
        result.unwrap_or(Ok(()))
    }

    /// Stops accepting, lets in-flight Checks finish, and stops the refresh tasks.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.grpc.await;
        let _ = self.admin.await;
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
