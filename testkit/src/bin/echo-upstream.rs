//! `echo-upstream`: the demo's upstream service. Serves HTTPS on loopback, requires a
//! client certificate from the demo CA, and answers every request with the headers it
//! received, as JSON (see `testkit::echo`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use testkit::echo::EchoUpstream;
use testkit::pki;

/// Echoes each request's method, path and headers as JSON, over mTLS. For demos and tests.
#[derive(Debug, Parser)]
#[command(name = "echo-upstream")]
struct Cli {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,

    /// Directory written by `test-pki`: echo.pem, echo-key.pem and ca.pem (the CA that
    /// client certificates must chain to).
    #[arg(long)]
    certs: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !cli.listen.ip().is_loopback() {
        bail!("refusing to listen on non-loopback address {}", cli.listen);
    }
    let read = |name: &str| {
        let path = cli.certs.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let tls = pki::server_config(
        &read("echo.pem")?,
        &read("echo-key.pem")?,
        &read(pki::CA_FILE)?,
        pki::Alpn::Http1,
    )?;

    let echo = EchoUpstream::start(cli.listen, tls).await?;
    eprintln!(
        "echo-upstream: listening on https://{} (client certificate required)",
        echo.addr()
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}
