//! The command line: `serve`, `check-config` and `import-apim`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use anyhow::Context as _;
use tollgate::apim;
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
    /// Convert Azure API Management validate-jwt policies (and a sibling cors policy)
    /// into tollgate providers and policies plus an Envoy route snippet. Everything not
    /// converted as written is listed on stderr as `file:line: kind: subject: message`.
    ImportApim {
        /// The APIM policy document (XML).
        policy: PathBuf,
        /// Base name of the policies and providers written (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Write the config to this file, and the Envoy snippet (NAME-envoy.yaml) and any
        /// JWKS (NAME-jwks.json) next to it, instead of printing the config.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

impl Cli {
    /// Runs the chosen command.
    pub(crate) async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::CheckConfig { config } => Ok(check_config(&config)),
            Command::ImportApim {
                policy,
                name,
                output,
            } => import_apim(&policy, name, output.as_deref()),
            Command::Serve { config } => {
                let telemetry = telemetry::init(self.log_format)?;
                let code = serve(&config).await;
                telemetry.shutdown().await;
                code
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

fn import_apim(
    policy: &std::path::Path,
    name: Option<String>,
    output: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let xml = std::fs::read_to_string(policy)
        .with_context(|| format!("cannot read {}", policy.display()))?;
    let stem = policy.file_stem().map(|s| s.to_string_lossy());
    let name = name.unwrap_or_else(|| apim::name_from_file(stem.as_deref().unwrap_or("")));
    let source = policy.file_name().map_or_else(
        || policy.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let options = apim::Options { name, source };
    let import = match apim::import(&xml, &options) {
        Ok(import) => import,
        Err(error) => {
            eprintln!("{}: {:#}", policy.display(), anyhow::Error::from(error));
            return Ok(ExitCode::FAILURE);
        }
    };

    let dir = output
        .and_then(std::path::Path::parent)
        .unwrap_or(std::path::Path::new(""));
    let write = |path: std::path::PathBuf, text: &str| -> anyhow::Result<()> {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        Ok(())
    };
    for jwks in &import.jwks {
        write(dir.join(&jwks.file_name), &jwks.json)?;
    }
    match output {
        Some(path) => {
            write(path.to_owned(), &import.config)?;
            write(
                dir.join(format!("{}-envoy.yaml", options.name)),
                &import.envoy,
            )?;
        }
        None => {
            print!("{}", import.config);
            println!("\n# Envoy route snippet (written as NAME-envoy.yaml with --output):");
            for line in import.envoy.lines() {
                println!("# {line}");
            }
        }
    }
    for finding in &import.findings {
        eprintln!("{}:{finding}", policy.display());
    }
    Ok(ExitCode::SUCCESS)
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
