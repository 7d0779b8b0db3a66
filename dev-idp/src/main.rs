//! The `dev-idp` binary: runs the INSECURE development IdP until Ctrl-C or SIGTERM.
//!
//! Everything it serves comes from the library; this file only reads the command line,
//! refuses non-loopback addresses unless asked, and prints the banner.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use dev_idp::{Client, DevIdp, KeyAlg, Options};

/// INSECURE OpenID Connect provider for local demos and tests. Never use it in production.
///
/// Serves discovery at /.well-known/openid-configuration, keys at /jwks, the
/// client_credentials grant at /token, and POST /admin/rotate?alg=ES256 and
/// POST /admin/retire?kid=k1 for key rotation demos. Keys live in memory only.
#[derive(Debug, Parser)]
#[command(name = "dev-idp", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Issuer URL (the `iss` of tokens and the base of endpoint URLs). Default:
    /// http://<listen address>.
    #[arg(long)]
    issuer: Option<String>,

    /// A client as id:secret:scope1,scope2:aud1,aud2; repeat for more clients. Default:
    /// demo:demo-secret:orders.read,orders.write:api://orders.
    #[arg(long = "client", value_name = "SPEC")]
    clients: Vec<Client>,

    /// Algorithm of the first signing key: RS256, ES256 or EdDSA.
    #[arg(long, default_value = "RS256")]
    alg: KeyAlg,

    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime_secs: u64,

    /// Allow listening on an address other than loopback. Anyone who can reach it can get
    /// tokens with the demo credentials and rotate keys.
    #[arg(long)]
    allow_non_loopback: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !cli.listen.ip().is_loopback() && !cli.allow_non_loopback {
        bail!(
            "refusing to listen on non-loopback address {}: this IdP is insecure \
             (pass --allow-non-loopback to override)",
            cli.listen
        );
    }

    let clients = if cli.clients.is_empty() {
        vec![Client::demo()]
    } else {
        cli.clients
    };
    let options = Options {
        bind: cli.listen,
        issuer: cli.issuer,
        first_key: cli.alg,
        clients: clients.clone(),
        token_lifetime: Duration::from_secs(cli.token_lifetime_secs),
    };
    let idp = DevIdp::start_with(options).await?;

    banner(&idp, &clients);
    shutdown_signal().await?;
    eprintln!("dev-idp: shutting down");
    drop(idp);
    Ok(())
}

fn banner(idp: &DevIdp, clients: &[Client]) {
    let rule = "!".repeat(72);
    eprintln!("{rule}");
    eprintln!("!!  INSECURE development identity provider: never use in production");
    eprintln!("!!  keys live in memory, /admin/* is unauthenticated, secrets are demo values");
    eprintln!("{rule}");
    eprintln!("dev-idp: listening on {}", idp.addr());
    for client in clients {
        let scopes = client.scopes.join(",");
        let audiences = client.audiences.join(",");
        eprintln!(
            "dev-idp: client {} (scopes {scopes}; audiences {audiences})",
            client.id
        );
    }
    eprintln!("dev-idp: issuer {}", idp.issuer());
}

/// Waits for Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
