//! The route table: which policy a request gets when Envoy does not name one.
//!
//! Routes are tried in file order and the first match wins, as in Envoy's own route
//! tables. A path prefix matches on segment boundaries, so `/orders` covers `/orders`
//! and `/orders/7` but not `/orders-admin`.

use std::sync::Arc;

use super::{Policy, RequestLine};

/// How a route matches the path (the query string is never part of the match).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// Any path.
    Any,
    /// The path equals this string.
    Exact(String),
    /// The path is this string or continues it with a new segment.
    Prefix(String),
}

/// One entry of the route table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Lowercase host without port; `None` matches every host.
    pub host: Option<String>,
    /// The path condition.
    pub path: PathMatch,
    /// Uppercase methods; empty matches every method.
    pub methods: Vec<String>,
}

impl Route {
    /// Whether a request matches this route.
    ///
    /// ```
    /// use tollgate::policy::{PathMatch, RequestLine, Route};
    ///
    /// let path = PathMatch::Prefix("/orders".into());
    /// let route = Route { host: None, path, methods: vec![] };
    /// let request = |path| RequestLine { method: "GET", host: "api.test", path };
    /// assert!(route.matches(&request("/orders/7?page=2")));
    /// assert!(!route.matches(&request("/orders-admin")));
    /// ```
    pub fn matches(&self, request: &RequestLine<'_>) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == request.method) {
            return false;
        }
        if let Some(host) = &self.host
            && !host.eq_ignore_ascii_case(strip_port(request.host))
        {
            return false;
        }
        let path = request.path.split(['?', '#']).next().unwrap_or_default();
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
                None => false,
            },
        }
    }
}

/// Routes in file order, each with its policy.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<(Route, Arc<Policy>)>,
}

impl RouteTable {
    /// A table that tries `routes` in order.
    pub fn new(routes: Vec<(Route, Arc<Policy>)>) -> Self {
        Self { routes }
    }

    /// The first matching route's index and policy.
    pub fn select(&self, request: &RequestLine<'_>) -> Option<(usize, &Arc<Policy>)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, (route, _))| route.matches(request))
            .map(|(index, (_, policy))| (index, policy))
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal keeps its brackets; only a port after `]` goes.
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: PathMatch, methods: &[&str]) -> Route {
        Route {
            host: host.map(str::to_owned),
            path,
            methods: methods.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn request<'a>(method: &'a str, host: &'a str, path: &'a str) -> RequestLine<'a> {
        RequestLine { method, host, path }
    }

    #[test]
    fn prefix_matches_on_segment_boundaries_only() {
        let r = route(None, PathMatch::Prefix("/orders".into()), &[]);
        let cases = [
            ("/orders", true),
            ("/orders/", true),
            ("/orders/7", true),
            ("/orders?x=1", true),
            ("/ordersx", false),
            ("/orders-admin", false),
            ("/", false),
        ];
        for (path, expected) in cases {
            assert_eq!(r.matches(&request("GET", "h", path)), expected, "{path}");
        }
    }

    #[test]
    fn prefix_with_trailing_slash_matches_below_it() {
        let r = route(None, PathMatch::Prefix("/api/".into()), &[]);
        assert!(r.matches(&request("GET", "h", "/api/x")));
        assert!(!r.matches(&request("GET", "h", "/api")));
    }

    #[test]
    fn exact_ignores_query_string() {
        let r = route(None, PathMatch::Exact("/health".into()), &[]);
        assert!(r.matches(&request("GET", "h", "/health?full=1")));
        assert!(!r.matches(&request("GET", "h", "/health/db")));
    }

    #[test]
    fn methods_and_host_must_both_match() {
        let r = route(Some("api.example.test"), PathMatch::Any, &["GET", "HEAD"]);
        assert!(r.matches(&request("GET", "API.example.test:8443", "/")));
        assert!(r.matches(&request("HEAD", "api.example.test", "/")));
        assert!(!r.matches(&request("POST", "api.example.test", "/")));
        assert!(!r.matches(&request("GET", "other.test", "/")));
    }

    #[test]
    fn ipv6_host_port_is_stripped() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("example.test:80"), "example.test");
        assert_eq!(strip_port("example.test"), "example.test");
    }
}
