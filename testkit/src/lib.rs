//! tollgate's test kit: the pieces around tollgate that its end-to-end tests, its demo and
//! its benchmarks need, and that a real deployment gets from elsewhere.
//!
//! - [`pki`]: a throwaway certificate authority and the certificates of the demo and the
//!   tests (the upstream's server certificate, Envoy's client certificate, tollgate's
//!   server certificate), generated at run time so no private key is ever committed;
//! - [`echo`]: an upstream service over mTLS that answers every request with the request
//!   headers it received, as JSON, so a test can see what Envoy forwarded;
//! - [`template`]: fills the `${NAME}` placeholders of the configs in `envoy/` and
//!   `examples/`, which hold ports and paths known only at run time;
//! - [`envoy`]: starts the real Envoy from the repository's tooling folder on loopback and
//!   reports the ports it bound;
//! - [`browser`]: headless Chromium under chromedriver, and a one-page web server to load
//!   into it.
//!
//! The binaries `echo-upstream` and `test-pki` expose the first two to `scripts/demo`.
//! Nothing here is fit for production: the CA key lives in memory for one run and every
//! listener is meant for loopback.

pub mod browser;
pub mod echo;
pub mod envoy;
pub mod pki;
pub mod template;

use std::path::{Path, PathBuf};

/// The root of the tollgate repository: the nearest directory at or above the running
/// package's (cargo sets `CARGO_MANIFEST_DIR` for tests and benches; else the current
/// directory) whose `Cargo.toml` declares the `[workspace]`.
///
/// Found at run time on purpose: two checkouts that share a cargo target directory may
/// share this crate's compiled code, so a path fixed at compile time could point into the
/// other checkout.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    let declares_workspace = |dir: &Path| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|manifest| manifest.lines().any(|line| line.trim() == "[workspace]"))
    };
    start
        .as_deref()
        .and_then(|start| start.ancestors().find(|dir| declares_workspace(dir)))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| {
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().map(PathBuf::from).unwrap_or(manifest)
        })
}
