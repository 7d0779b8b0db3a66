//! The command line: `serve` and `check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tollgate::config::Config;
use tollgate::server::Server;
use tollgate::telemetry::{self, LogFormat};

/// External authorization for Envoy: checks OAuth2/OpenID Connect access tokens
/// against per-route policies and answers Envoy's ext_authz Check calls over gRPC.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version)]
pub(crate) struct Cli {
    /// Log format: human-readable on a terminal and JSON otherwise (auto), or forced.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "TOLLGATE_LOG_FORMAT"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Envoy's Check calls (gRPC) and /healthz, /readyz (HTTP) until Ctrl-C or
    /// SIGTERM. Keys load in the background; /readyz turns 200 once every provider has
    /// keys.
    Serve {
        /// The config file (YAML).
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
    },
    /// Check a config file and exit: prints `file: key.path: problem` for each problem
    /// and exits 1, or prints a summary and exits 0. Nothing is fetched.
    CheckConfig {
        /// The config file (YAML).
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
    },
}

impl Cli {
    /// Runs the chosen command.
    pub(crate) async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::CheckConfig { config } => Ok(check_config(&config)),
            Command::Serve { config } => {
                telemetry::init(self.log_format);
                serve(&config).await
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            let policies = config.policies.iter().count();
            println!(
                "{}: ok ({} providers, {policies} policies)",
                path.display(),
                config.providers.len(),
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            for line in error.to_string().lines() {
                tracing::error!(problem = line, "config invalid");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut server = Server::start(config).await?;
    tokio::select! {
        result = server.wait() => result?,
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            server.shutdown().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
