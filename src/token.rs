//! Finding the token in a request: a header with a scheme, a bare header, a query
//! parameter or a cookie.
//!
//! The rules follow RFC 6750 §2 and RFC 9110 §11: the auth scheme is case-insensitive
//! and followed by one or more spaces; the credential is a `b64token`. Two credentials in
//! one request are refused rather than guessing which one counts. Whether the token is a
//! valid JWT is [`crate::verify`]'s business.

use std::borrow::Cow;
use std::fmt;

use crate::request::HttpRequestView;

/// One place a policy looks for the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// A header; with a scheme (`Authorization: Bearer …`) or, without, the whole value.
    Header {
        /// Lowercase header name.
        name: String,
        /// Auth scheme, compared case-insensitively.
        scheme: Option<String>,
    },
    /// A query parameter of the request target.
    Query(String),
    /// A cookie.
    Cookie(String),
}

impl TokenSource {
    /// `Authorization: Bearer`, the default source.
    pub fn bearer() -> Self {
        Self::Header {
            name: "authorization".into(),
            scheme: Some("Bearer".into()),
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header {
                name,
                scheme: Some(scheme),
            } => write!(f, "header {name} ({scheme})"),
            Self::Header { name, scheme: None } => write!(f, "header {name}"),
            Self::Query(name) => write!(f, "query parameter {name}"),
            Self::Cookie(name) => write!(f, "cookie {name}"),
        }
    }
}

/// A token as found in the request. Its text never reaches a log or an answer.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken<'a>(Cow<'a, str>);

impl BearerToken<'_> {
    /// The token text, for verification only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken({} bytes)", self.0.len())
    }
}

/// Why no single token could be taken from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No source holds a credential of the expected kind.
    #[error("no bearer token in the request")]
    Missing,
    /// A source holds a credential that is not a well-formed bearer credential.
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    /// More than one credential was sent.
    #[error("more than one credential in the request")]
    Multiple,
    /// The token is longer than the configured limit.
    #[error("token of {bytes} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Size of the credential.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Finds exactly one token in the request.
///
/// # Errors
///
/// [`TokenError`] when there is no token, more than one, or a malformed one.
pub fn extract<'a>(
    sources: &[TokenSource],
    request: HttpRequestView<'a>,
    max_bytes: usize,
) -> Result<BearerToken<'a>, TokenError> {
    let mut found: Option<BearerToken<'a>> = None;
    let mut keep = |token: BearerToken<'a>| match found {
        Some(_) => Err(TokenError::Multiple),
        None => {
            found = Some(token);
            Ok(())
        }
    };
    for source in sources {
        match source {
            TokenSource::Header { name, scheme } => {
                for value in request.values(name) {
                    if let Some(token) = from_header(value, scheme.as_deref(), max_bytes)? {
                        keep(token)?;
                    }
                }
            }
            TokenSource::Query(name) => {
                let path = request.line().path;
                if let Some((_, query)) = path.split_once('?') {
                    let query = query.split('#').next().unwrap_or_default();
                    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                        if key == name.as_str() {
                            keep(checked(value, max_bytes)?)?;
                        }
                    }
                }
            }
            TokenSource::Cookie(name) => {
                for header in request.values("cookie") {
                    let header = std::str::from_utf8(header)
                        .map_err(|_| TokenError::Malformed("cookie header is not UTF-8"))?;
                    for (key, value) in header.split(';').filter_map(|c| c.trim().split_once('=')) {
                        if key == name {
                            let value = value.trim_matches('"');
                            keep(checked(Cow::Borrowed(value), max_bytes)?)?;
                        }
                    }
                }
            }
        }
    }
    found.ok_or(TokenError::Missing)
}

/// The token in one header value, `None` when the value is another kind of credential.
fn from_header<'a>(
    value: &'a [u8],
    scheme: Option<&str>,
    max_bytes: usize,
) -> Result<Option<BearerToken<'a>>, TokenError> {
    let value = std::str::from_utf8(value)
        .map_err(|_| TokenError::Malformed("credential header is not UTF-8"))?
        .trim_matches([' ', '\t']);
    let Some(scheme) = scheme else {
        if value.is_empty() {
            return Ok(None);
        }
        return checked(Cow::Borrowed(value), max_bytes).map(Some);
    };

    let Some(head) = value.get(..scheme.len()) else {
        return Ok(None);
    };
    if !head.eq_ignore_ascii_case(scheme) {
        return Ok(None);
    }
    let rest = &value[scheme.len()..];
    let token = match rest.as_bytes().first() {
        None => return Err(TokenError::Malformed("scheme without a token")),
        Some(b' ') => rest.trim_start_matches(' '),
        Some(c) if c.is_ascii_whitespace() => {
            return Err(TokenError::Malformed("scheme must be followed by a space"));
        }
        // Another scheme that merely starts with the same letters (`BearerX`).
        Some(_) => return Ok(None),
    };
    checked(Cow::Borrowed(token), max_bytes).map(Some)
}

/// Applies the size limit first, then the `b64token` grammar (RFC 6750 §2.1).
fn checked(token: Cow<'_, str>, max_bytes: usize) -> Result<BearerToken<'_>, TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::TooLarge {
            bytes: token.len(),
            limit: max_bytes,
        });
    }
    if token.is_empty() {
        return Err(TokenError::Malformed("empty token"));
    }
    let body = token.trim_end_matches('=');
    let b64token =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
    if body.is_empty() || !body.bytes().all(b64token) {
        return Err(TokenError::Malformed("token is not a b64token"));
    }
    Ok(BearerToken(token))
}

#[cfg(test)]
mod tests;
