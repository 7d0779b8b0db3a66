//! OpenID Connect discovery: from the provider's metadata document to its `jwks_uri`.
//!
//! The document's `issuer` must equal the configured issuer exactly (OpenID Connect
//! Discovery 1.0 §4.3); a document that disagrees is refused and its `jwks_uri` never
//! fetched. An `https` document may not point at `http` issuers or key sets.

use serde_json::Value;

/// Why a discovery document was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The body is not a JSON object.
    #[error("discovery document at {url} is not a JSON object")]
    NotJson {
        /// Where it came from.
        url: String,
    },
    /// `issuer` differs from the configured issuer.
    #[error(
        "discovery document at {url} declares issuer {published:?}, \
         but the config expects {configured:?}"
    )]
    IssuerMismatch {
        /// Where it came from.
        url: String,
        /// The document's `issuer`.
        published: String,
        /// The configured issuer.
        configured: String,
    },
    /// `jwks_uri` is missing or not an absolute http(s) URL.
    #[error("discovery document at {url} has no usable jwks_uri")]
    NoJwksUri {
        /// Where it came from.
        url: String,
    },
    /// `jwks_uri` names a host other than the document's, and the config does not allow it.
    #[error(
        "discovery document at {url} sends keys to host {host:?}; list it in jwks_hosts to allow it"
    )]
    ForeignJwksHost {
        /// Where it came from.
        url: String,
        /// The `jwks_uri` host.
        host: String,
    },
    /// An `https` document names an `http` issuer or key set.
    #[error("discovery document at {url} downgrades to http in {field}")]
    Downgrade {
        /// Where it came from.
        url: String,
        /// `issuer` or `jwks_uri`.
        field: &'static str,
    },
}

/// The `jwks_uri` of a discovery document, after checking its `issuer`.
///
/// # Errors
///
/// [`DiscoveryError`] naming what is wrong with the document.
pub fn jwks_uri(body: &[u8], url: &str, issuer: &str) -> Result<String, DiscoveryError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|_| DiscoveryError::NotJson { url: url.into() })?;
    let doc = doc
        .as_object()
        .ok_or_else(|| DiscoveryError::NotJson { url: url.into() })?;

    let published = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if published != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.into(),
            published: published.into(),
            configured: issuer.into(),
        });
    }

    let secure = url.starts_with("https://");
    if secure && !published.starts_with("https://") {
        return Err(DiscoveryError::Downgrade {
            url: url.into(),
            field: "issuer",
        });
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| DiscoveryError::NoJwksUri { url: url.into() })?;
    if secure && !jwks_uri.starts_with("https://") {
        return Err(DiscoveryError::Downgrade {
            url: url.into(),
            field: "jwks_uri",
        });
    }
    Ok(jwks_uri.to_owned())
}

/// Checks that `jwks_uri` stays on the discovery document's host or an allowed one, so a
/// tampered or misconfigured document cannot point tollgate at someone else's keys.
///
/// # Errors
///
/// [`DiscoveryError::ForeignJwksHost`] for any other host.
pub fn check_jwks_host(
    jwks_uri: &str,
    url: &str,
    allowed: &[String],
) -> Result<(), DiscoveryError> {
    let host = |u: &str| {
        reqwest::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    };
    let jwks_host = host(jwks_uri).unwrap_or_default();
    if host(url).as_deref() == Some(jwks_host.as_str()) || allowed.contains(&jwks_host) {
        return Ok(());
    }
    Err(DiscoveryError::ForeignJwksHost {
        url: url.into(),
        host: jwks_host,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const URL: &str = "https://idp.example.test/login/v1/sandbox/.well-known/openid-configuration";

    fn check(doc: serde_json::Value, issuer: &str) -> Result<String, DiscoveryError> {
        jwks_uri(doc.to_string().as_bytes(), URL, issuer)
    }

    #[test]
    fn issuer_must_equal_the_configured_issuer() {
        let doc = json!({
            "issuer": "https://idp.example.test/login/v1",
            "jwks_uri": "https://idp.example.test/login/v1/oidc/jwks.json",
        });
        assert_eq!(
            check(doc.clone(), "https://idp.example.test/login/v1").as_deref(),
            Ok("https://idp.example.test/login/v1/oidc/jwks.json")
        );
        assert!(matches!(
            check(doc, "https://idp.example.test/login/v1/sandbox"),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
    }

    #[test]
    fn https_document_may_not_downgrade() {
        let doc = json!({"issuer": "http://idp.example.test", "jwks_uri": "https://x/jwks"});
        assert!(matches!(
            check(doc, "http://idp.example.test"),
            Err(DiscoveryError::Downgrade {
                field: "issuer",
                ..
            })
        ));
        let doc = json!({"issuer": "https://idp.example.test", "jwks_uri": "http://x/jwks"});
        assert!(matches!(
            check(doc, "https://idp.example.test"),
            Err(DiscoveryError::Downgrade {
                field: "jwks_uri",
                ..
            })
        ));
    }

    #[test]
    fn garbage_and_missing_jwks_uri_are_refused() {
        assert!(matches!(
            jwks_uri(b"<html>", URL, "x"),
            Err(DiscoveryError::NotJson { .. })
        ));
        let doc = json!({"issuer": "https://i", "jwks_uri": "/relative"});
        assert!(matches!(
            check(doc, "https://i"),
            Err(DiscoveryError::NoJwksUri { .. })
        ));
    }
}
