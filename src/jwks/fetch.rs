//! Fetching discovery documents and key sets over HTTP, or a key set from disk.
//!
//! Every fetch has a timeout and a body size limit, follows no redirect, and reports
//! the `Cache-Control: max-age` the provider asked for. Parsing stays in
//! [`super::key_set`] and [`super::discovery`].

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;

use crate::policy::{KeySource, Provider};

use super::discovery::{self, DiscoveryError};
use super::key_set::{KeySet, KeySetError};

/// Largest discovery or JWKS body accepted.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// Why a refresh produced no key set.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP request failed or timed out.
    #[error("request to {url} failed")]
    Http {
        /// The URL fetched.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a non-success status (redirects included).
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body exceeded [`MAX_BODY_BYTES`].
    #[error("{url} sent more than {MAX_BODY_BYTES} bytes")]
    TooLarge {
        /// The URL fetched.
        url: String,
    },
    /// The key file could not be read.
    #[error("cannot read {path}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The discovery document was refused.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The body is not a key set.
    #[error("bad key set from {origin}")]
    KeySet {
        /// URL or file.
        origin: String,
        /// The cause.
        #[source]
        source: KeySetError,
    },
    /// The key set holds no key tollgate can use.
    #[error("no usable signature key in the key set from {origin}")]
    NoUsableKey {
        /// URL or file.
        origin: String,
    },
}

/// A successfully fetched key set.
#[derive(Debug)]
pub struct Fetched {
    /// The keys.
    pub keys: KeySet,
    /// The JWKS URL or file it came from.
    pub origin: String,
    /// `Cache-Control: max-age` of the response.
    pub max_age: Option<Duration>,
}

/// Builds the HTTP client used for every provider fetch.
///
/// # Errors
///
/// When the TLS backend cannot be initialised.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .build()
}

/// Fetches a provider's keys; `jwks_uri` is the one found by the last discovery, reused
/// for an early refetch so an unknown `kid` costs one request, not two.
///
/// # Errors
///
/// [`FetchError`] for every way a fetch can fail; the caller keeps its last good keys.
pub async fn keys(
    client: &reqwest::Client,
    provider: &Provider,
    known_jwks_uri: Option<&str>,
) -> Result<(Fetched, Option<String>), FetchError> {
    let (jwks_uri, body, max_age) = match &provider.source {
        KeySource::JwksFile(path) => {
            let origin = path.display().to_string();
            let body = tokio::fs::read(path)
                .await
                .map_err(|source| FetchError::File {
                    path: origin.clone(),
                    source,
                })?;
            return finish(body, origin, None).map(|f| (f, None));
        }
        KeySource::JwksUri(uri) => {
            let (body, max_age) = get(client, uri, provider.fetch_timeout).await?;
            (uri.clone(), body, max_age)
        }
        KeySource::Discovery(url) => {
            let jwks_uri = match known_jwks_uri {
                Some(uri) => uri.to_owned(),
                None => {
                    let (doc, _) = get(client, url, provider.fetch_timeout).await?;
                    let jwks_uri = discovery::jwks_uri(&doc, url, &provider.issuer)?;
                    discovery::check_jwks_host(&jwks_uri, url, &provider.jwks_hosts)?;
                    jwks_uri
                }
            };
            let (body, max_age) = get(client, &jwks_uri, provider.fetch_timeout).await?;
            (jwks_uri, body, max_age)
        }
    };
    let fetched = finish(body, jwks_uri.clone(), max_age)?;
    Ok((fetched, Some(jwks_uri)))
}

fn finish(body: Vec<u8>, origin: String, max_age: Option<Duration>) -> Result<Fetched, FetchError> {
    let keys = KeySet::parse(&body).map_err(|source| FetchError::KeySet {
        origin: origin.clone(),
        source,
    })?;
    if keys.keys().is_empty() {
        return Err(FetchError::NoUsableKey { origin });
    }
    Ok(Fetched {
        keys,
        origin,
        max_age,
    })
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let http = |source| FetchError::Http {
        url: url.to_owned(),
        source,
    };
    let mut response = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(http)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let max_age = response
        .headers()
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(max_age);
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(FetchError::TooLarge {
            url: url.to_owned(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(FetchError::TooLarge {
                url: url.to_owned(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// `max-age` of a `Cache-Control` value (RFC 9111 §5.2.2.1).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        seconds
            .trim()
            .trim_matches('"')
            .parse()
            .ok()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }
}
