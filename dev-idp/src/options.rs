//! Start-up settings: where to listen, the issuer, the first key and the OAuth2 clients.
//!
//! The binary builds these from its command line (`Client` parses the `--client` syntax);
//! tests build them directly.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::keys::KeyAlg;

/// How to start a [`DevIdp`](crate::DevIdp).
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 lets the OS choose. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// The `iss` of minted tokens and the base of every endpoint URL. Default
    /// `http://<bound address>`, for example `http://127.0.0.1:41234`.
    pub issuer: Option<String>,
    /// Algorithm of the first key, `k1`, which signs until told otherwise. Default RS256.
    pub first_key: KeyAlg,
    /// Clients the token endpoint accepts. Default: [`Client::demo`].
    pub clients: Vec<Client>,
    /// Lifetime of minted tokens (`exp - iat`). Default one hour.
    pub token_lifetime: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            issuer: None,
            first_key: KeyAlg::Rs256,
            clients: vec![Client::demo()],
            token_lifetime: Duration::from_secs(3600),
        }
    }
}

/// An OAuth2 client allowed to use the `client_credentials` grant. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    /// The `client_id`; also the `sub` of the tokens it gets.
    pub id: String,
    /// The `client_secret`.
    pub secret: String,
    /// Scopes it may ask for; all of them when it asks for none.
    pub scopes: Vec<String>,
    /// Audiences it may ask for; the first one when it asks for none.
    pub audiences: Vec<String>,
}

impl Client {
    /// The demo client: `demo` / `demo-secret`, scopes `orders.read orders.write`,
    /// audience `api://orders`.
    pub fn demo() -> Client {
        Client {
            id: "demo".to_owned(),
            secret: "demo-secret".to_owned(),
            scopes: vec!["orders.read".to_owned(), "orders.write".to_owned()],
            audiences: vec!["api://orders".to_owned()],
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl FromStr for Client {
    type Err = String;

    /// Parses `id:secret:scope1,scope2:aud1,aud2`. Everything after the third colon is the
    /// audience list, so audiences may contain colons (`api://orders`). Scopes and
    /// audiences may be empty lists.
    fn from_str(spec: &str) -> Result<Client, String> {
        let mut parts = spec.splitn(4, ':');
        let mut next = || parts.next().unwrap_or_default();
        let (id, secret, scopes, audiences) = (next(), next(), next(), next());
        if id.is_empty() || secret.is_empty() {
            return Err("expected id:secret:scope1,scope2:aud1,aud2".to_owned());
        }

        Ok(Client {
            id: id.to_owned(),
            secret: secret.to_owned(),
            scopes: list(scopes),
            audiences: list(audiences),
        })
    }
}

/// Splits a comma-separated list, skipping empty items.
fn list(items: &str) -> Vec<String> {
    items
        .split(',')
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_spec_keeps_colons_in_audiences() {
        let client: Client = "demo:demo-secret:orders.read,orders.write:api://orders"
            .parse()
            .unwrap();

        assert_eq!(client, Client::demo());
    }

    #[test]
    fn client_spec_allows_empty_lists_but_needs_id_and_secret() {
        let bare: Client = "svc:pw".parse().unwrap();

        assert!(bare.scopes.is_empty() && bare.audiences.is_empty());
        assert!("svc".parse::<Client>().is_err());
        assert!(":pw:a:b".parse::<Client>().is_err());
    }

    #[test]
    fn client_debug_hides_the_secret() {
        assert!(!format!("{:?}", Client::demo()).contains("demo-secret"));
    }
}
