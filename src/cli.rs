//! The command line: `serve`, `check-config`, `explain` and `import-apim`.

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
    /// and exits 1, or prints a summary and exits 0. Nothing is fetched unless --online.
    CheckConfig {
        /// The config file (YAML).
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
        /// Also fetch each provider's discovery document and keys, and look for policies
        /// nothing selects: exits 1 on errors (requests would be denied), 0 with warnings.
        #[arg(long)]
        online: bool,
    },
    /// Explain what tollgate would answer to one request with one token: the policy it
    /// selects and why, the token's header and claims (unverified), the provider and key
    /// that would verify it (keys fetched live), every check with expected and actual
    /// values, and the answer. The token never leaves this process. Exits 0 for an allow,
    /// 1 for a deny or an invalid config.
    Explain {
        /// The config file (YAML).
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
        /// The token (a leading `Bearer ` is ignored). Without --token or --token-file it
        /// is read from stdin, which keeps it out of the process list.
        #[arg(long, conflicts_with = "token_file")]
        token: Option<String>,
        /// Read the token from this file.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// HTTP method of the request.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Path of the request, query included.
        #[arg(long, default_value = "/")]
        path: String,
        /// Host (`:authority`) of the request.
        #[arg(long, default_value = "")]
        host: String,
        /// The policy Envoy names in context_extensions (the route table is then skipped).
        #[arg(long)]
        policy: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
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
            Command::CheckConfig { config, online } => {
                let code = check_config(&config);
                if online && code == ExitCode::SUCCESS {
                    return check_online(&config).await;
                }
                Ok(code)
            }
            Command::Explain {
                config,
                token,
                token_file,
                method,
                path,
                host,
                policy,
                json,
            } => {
                let token = read_token(token, token_file.as_deref())?;
                let input = tollgate::explain::Input {
                    token,
                    method,
                    path,
                    host,
                    policy,
                };
                explain(&config, &input, json).await
            }
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

async fn check_online(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let client = tollgate::jwks::fetch::client().context("cannot build the HTTP client")?;
    let findings = tollgate::probe::check(&config, &client).await;
    for finding in &findings {
        println!("{finding}");
    }
    let count = |severity| findings.iter().filter(|f| f.severity == severity).count();
    let errors = count(tollgate::probe::Severity::Error);
    let warnings = count(tollgate::probe::Severity::Warning);
    println!(
        "{}: online: {errors} error(s), {warnings} warning(s)",
        path.display()
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_token(token: Option<String>, file: Option<&std::path::Path>) -> anyhow::Result<String> {
    if let Some(token) = token {
        return Ok(token);
    }
    if let Some(file) = file {
        return std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()));
    }
    let mut token = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut token)
        .context("cannot read the token from stdin")?;
    Ok(token)
}

async fn explain(
    path: &std::path::Path,
    input: &tollgate::explain::Input,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(config) => std::sync::Arc::new(config),
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let client = tollgate::jwks::fetch::client().context("cannot build the HTTP client")?;
    let report = tollgate::explain::explain(config, input, &client, tollgate::now()).await;
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.to_string()
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(if report.answer.decision == "allow" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
