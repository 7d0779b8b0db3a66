//! A real browser for tests: headless Chromium driven through chromedriver (WebDriver),
//! and a one-page web server to load into it.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages
//! (`scripts/install-tools chromium`); `TOLLGATE_CHROMIUM` and `TOLLGATE_CHROMEDRIVER` may
//! name other binaries. [`Browser::start`] tells "not installed" and "cannot start" apart
//! from other failures with [`Unavailable`], so a test can skip only in those cases.
//!
//! Chromium runs with a fresh profile and everything that would reach the network on its
//! own (updates, sync, background fetches, QUIC) turned off.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Environment variable naming the Chromium binary.
pub const CHROMIUM_VAR: &str = "TOLLGATE_CHROMIUM";
/// Environment variable naming the chromedriver binary.
pub const CHROMEDRIVER_VAR: &str = "TOLLGATE_CHROMEDRIVER";

/// Why there is no browser to test with: the only failures a test may skip on.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// A binary is missing.
    #[error("{0} is not installed (scripts/install-tools chromium installs it)")]
    NotInstalled(&'static str),
    /// chromedriver runs but Chromium does not start, as in some sandboxes.
    #[error("Chromium cannot start here: {0}")]
    CannotStart(String),
}

/// Headless Chromium under chromedriver; both stop when it is dropped (or closed).
pub struct Browser {
    client: fantoccini::Client,
    _driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    ///
    /// # Errors
    ///
    /// [`Unavailable`] (inside the `anyhow` error, see [`anyhow::Error::downcast_ref`]) when
    /// a binary is missing or Chromium cannot start; other errors for anything else.
    pub async fn start() -> anyhow::Result<Browser> {
        let chromium = find(CHROMIUM_VAR, &["/usr/lib/chromium/chromium"], "chromium")
            .ok_or(Unavailable::NotInstalled("chromium"))?;
        let chromedriver = find(CHROMEDRIVER_VAR, &[], "chromedriver")
            .ok_or(Unavailable::NotInstalled("chromedriver"))?;
        let profile = tempfile::tempdir().context("cannot create a browser profile")?;

        let (driver, port) = start_driver(&chromedriver).await?;
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-proxy-server",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("json! of an object literal is an object");
        };
        let client = fantoccini::ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| Unavailable::CannotStart(e.to_string()))?;

        Ok(Browser {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// The WebDriver client, to navigate and run scripts.
    pub fn client(&self) -> &fantoccini::Client {
        &self.client
    }

    /// Ends the session (Chromium exits); chromedriver stops on drop.
    ///
    /// # Errors
    ///
    /// When chromedriver does not answer.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client
            .clone()
            .close()
            .await
            .context("cannot end the browser session")
    }
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Browser { .. }")
    }
}

/// Starts chromedriver on a port it picks and reads that port from its banner.
async fn start_driver(chromedriver: &Path) -> anyhow::Result<(Child, u16)> {
    let mut driver = Command::new(chromedriver)
        .args(["--port=0", "--allowed-ips=127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", chromedriver.display()))?;
    let stdout = driver.stdout.take().context("no chromedriver output")?;
    let mut lines = BufReader::new(stdout).lines();

    let banner = async {
        while let Some(line) = lines.next_line().await? {
            // "ChromeDriver was started successfully on port 37227."
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return Ok(rest.trim_end_matches('.').trim().parse::<u16>().ok());
            }
        }
        Ok::<_, std::io::Error>(None)
    };
    let port = tokio::time::timeout(Duration::from_secs(10), banner)
        .await
        .map_err(|_| Unavailable::CannotStart("chromedriver did not start in 10 s".into()))?
        .context("cannot read chromedriver's output")?
        .ok_or_else(|| Unavailable::CannotStart("chromedriver exited at start".into()))?;
    // Keep reading its output so that a full pipe never blocks it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((driver, port))
}

/// `$VAR` if set, else the first existing path of `preferred`, else `name` on the `PATH`;
/// `None` when that file does not exist.
fn find(var: &str, preferred: &[&str], name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let preferred = preferred.iter().map(PathBuf::from);
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    preferred.chain(on_path).find(|path| path.is_file())
}

/// A web server with one HTML page, served at every path; stops when dropped.
#[derive(Debug)]
pub struct Page {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Page {
    /// Serves `html` over plain HTTP on `127.0.0.1` with an OS-chosen port.
    ///
    /// # Errors
    ///
    /// If the listener cannot bind.
    pub async fn serve(html: &str) -> anyhow::Result<Page> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot listen for the page")?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let html = Arc::new(Bytes::from(html.to_owned()));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let html = Arc::clone(&html);
                tokio::spawn(async move {
                    let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                        let html = Bytes::clone(&html);
                        async move {
                            let mut response = Response::new(Full::new(html));
                            response.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Page { addr, task })
    }

    /// The page's origin, written with the host name `localhost` so that it differs from
    /// an API on `127.0.0.1` in host as well as port.
    pub fn origin(&self) -> String {
        format!("http://localhost:{}", self.addr.port())
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.task.abort();
    }
}
