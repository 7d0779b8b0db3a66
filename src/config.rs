//! The config file: parse, validate with clear errors, apply defaults.
//!
//! [`Config::load`] reads YAML ([`file`]) and checks it ([`validate`]) into the types of
//! [`crate::policy`]. Every problem is reported as `file: key.path: problem`, all of them
//! at once, so one run of `tollgate check-config` shows everything to fix.

pub mod file;
pub mod reload;
pub mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::policy::{Policies, Provider};
use crate::server::tls::TlsFiles;

/// A checked config, ready to serve.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// gRPC listener address.
    pub grpc: SocketAddr,
    /// Admin HTTP listener address.
    pub admin: SocketAddr,
    /// Tokens longer than this are refused before decoding.
    pub max_token_bytes: usize,
    /// Longest wait of a Check for an early key refetch.
    pub check_budget: Duration,
    /// How long in-flight Checks may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// TLS on the gRPC listener; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Every provider.
    pub providers: Vec<Arc<Provider>>,
    /// Policies, routes and the default.
    pub policies: Policies,
    /// Correlation header name, lowercase.
    pub correlation_header: String,
    /// Every header name that any policy fills from claims, lowercase.
    pub claim_headers: Vec<String>,
    /// Estimated memory bound of the verified-token cache; 0 turns it off.
    pub token_cache_bytes: u64,
    /// Longest life of a cache entry.
    pub token_cache_ttl: Duration,
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path (`policies.orders.audiences`), empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Why a config file was refused: every problem found, each with its key path.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The problems, in file order where possible.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if problem.key.is_empty() {
                write!(f, "{}: {}", self.path.display(), problem.message)?;
            } else {
                write!(
                    f,
                    "{}: {}: {}",
                    self.path.display(),
                    problem.key,
                    problem.message
                )?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks a config file.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] listing every problem with its key path.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let fail = |message: String| ConfigError {
            path: path.to_owned(),
            problems: vec![Problem {
                key: String::new(),
                message,
            }],
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        Self::parse(&text, path)
    }

    /// Checks config text as if read from `path` (relative `jwks_file`s resolve against
    /// its directory).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] listing every problem with its key path.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: file::File = serde_saphyr::from_str(text).map_err(|e| ConfigError {
            path: path.to_owned(),
            problems: vec![Problem {
                key: String::new(),
                message: yaml_message(&e.to_string()),
            }],
        })?;
        validate::check(raw, path).map_err(|problems| ConfigError {
            path: path.to_owned(),
            problems,
        })
    }
}

/// The first line of a YAML error (`line 4 column 5: unknown field ...`); the rest is a
/// source snippet that repeats the file.
fn yaml_message(error: &str) -> String {
    let first = error.lines().next().unwrap_or(error);
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}
