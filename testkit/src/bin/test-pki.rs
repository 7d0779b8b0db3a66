//! `test-pki DIR`: makes a throwaway CA and the demo's certificates, and writes them to
//! DIR (see `testkit::pki` for the files). The CA key is never written.

use std::path::PathBuf;

use clap::Parser;
use testkit::pki::TestPki;

/// Writes a fresh throwaway CA certificate and the demo's certificates and keys to DIR.
#[derive(Debug, Parser)]
#[command(name = "test-pki")]
struct Cli {
    /// Output directory (created if missing).
    dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    TestPki::generate()?.write_to(&cli.dir)?;
    eprintln!("test-pki: wrote certificates to {}", cli.dir.display());
    Ok(())
}
