//! The correlation id that ties a client's request, Envoy, tollgate and the upstream.
//!
//! A valid incoming correlation header is kept (so a caller's id survives), else
//! Envoy's `x-request-id` is used, else a new UUIDv7 is minted. Ids are bounded in
//! length and limited to characters safe in headers and logs.

use std::fmt;

use crate::request::HttpRequestView;

/// Longest correlation id accepted from a client.
pub const MAX_LEN: usize = 128;

/// A correlation id, safe to log and to put in a header.
#[derive(Clone, PartialEq, Eq)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// Accepts the incoming header, else Envoy's request id, else mints one.
    pub fn for_request(request: HttpRequestView<'_>, header: &str) -> Self {
        request
            .values(header)
            .find_map(|v| std::str::from_utf8(v).ok().and_then(Self::parse))
            .or_else(|| request.request_id().and_then(Self::parse))
            .unwrap_or_else(Self::mint)
    }

    /// A fresh UUIDv7 (time-ordered, so ids sort by arrival in logs).
    pub fn mint() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// An id from a header value, if it is 1 to [`MAX_LEN`] safe characters.
    pub fn parse(value: &str) -> Option<Self> {
        let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
        (!value.is_empty() && value.len() <= MAX_LEN && value.chars().all(safe))
            .then(|| Self(value.to_owned()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_safe_ids_are_accepted() {
        let long = "a".repeat(MAX_LEN + 1);
        let cases = [
            ("abc-123", true),
            ("0190c6e2-7b1a-7c3e-9f00-1234567890ab", true),
            ("a:b.c_d", true),
            ("", false),
            ("has space", false),
            ("line\r\nbreak", false),
            ("<script>", false),
            (long.as_str(), false),
        ];
        for (value, ok) in cases {
            assert_eq!(CorrelationId::parse(value).is_some(), ok, "{value:?}");
        }
    }

    #[test]
    fn minted_ids_are_uuid_v7() {
        let id = CorrelationId::mint();
        let uuid = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
    }
}
