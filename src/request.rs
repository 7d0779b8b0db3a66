//! The HTTP request inside a Check call, as the request path reads it.
//!
//! Envoy sends headers either as a merged map (`headers`) or, with
//! `encode_raw_headers`, as a raw list (`header_map`) whose values may hold any bytes
//! and whose repeated names stay separate. [`HttpRequestView`] reads both without
//! building a new map.

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;

use crate::policy::RequestLine;

/// Borrowed view of the HTTP request in a [`CheckRequest`].
#[derive(Clone, Copy, Debug)]
pub struct HttpRequestView<'a> {
    http: Option<&'a HttpRequest>,
}

impl<'a> HttpRequestView<'a> {
    /// The HTTP request of a Check call; an empty view when Envoy sent none.
    pub fn new(check: &'a CheckRequest) -> Self {
        let http = check
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref()?.http.as_ref());
        Self { http }
    }

    /// Method, host and path for policy selection.
    pub fn line(self) -> RequestLine<'a> {
        match self.http {
            Some(http) => RequestLine {
                method: &http.method,
                host: if http.host.is_empty() {
                    self.first(":authority")
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .unwrap_or("")
                } else {
                    &http.host
                },
                path: &http.path,
            },
            None => RequestLine {
                method: "",
                host: "",
                path: "",
            },
        }
    }

    /// Envoy's request id: the `x-request-id` header, which Envoy sets on every request
    /// and uses in its access logs and traces, else the Check's `id` attribute.
    ///
    /// The header comes first because Envoy fills `id` with its internal stream id (a
    /// decimal number), not with `x-request-id`, so `id` alone would tie nothing together.
    pub fn request_id(self) -> Option<&'a str> {
        self.first("x-request-id")
            .and_then(|v| std::str::from_utf8(v).ok())
            .or_else(|| self.http.map(|h| h.id.as_str()))
            .filter(|id| !id.is_empty())
    }

    /// Every value of a header, by lowercase name, from both header representations.
    /// A merged header (`a, b`) is one value; raw repeated headers are several.
    pub fn values<'n>(self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        let http = self.http;
        let merged = http.and_then(|h| h.headers.get(name)).map(|v| v.as_bytes());
        let raw = http
            .and_then(|h| h.header_map.as_ref())
            .into_iter()
            .flat_map(|map| map.headers.iter())
            .filter(move |h| h.key.eq_ignore_ascii_case(name))
            .map(|h| {
                if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    h.raw_value.as_slice()
                }
            });
        merged.into_iter().chain(raw)
    }

    /// The first value of a header.
    pub fn first(self, name: &str) -> Option<&'a [u8]> {
        self.values(name).next()
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::Request;

    use super::*;

    fn check(id: &str, headers: &[(&str, &str)]) -> CheckRequest {
        let http = HttpRequest {
            id: id.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        };
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(http),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn request_id_is_the_x_request_id_header_before_the_stream_id() {
        let both = check("8437262948261", &[("x-request-id", "9f1c-req")]);
        let stream_only = check("8437262948261", &[]);
        let neither = check("", &[]);

        assert_eq!(HttpRequestView::new(&both).request_id(), Some("9f1c-req"));
        assert_eq!(
            HttpRequestView::new(&stream_only).request_id(),
            Some("8437262948261")
        );
        assert_eq!(HttpRequestView::new(&neither).request_id(), None);
    }
}
