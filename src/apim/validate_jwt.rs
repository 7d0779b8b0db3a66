//! One `<validate-jwt>` policy converted to tollgate providers and policies.
//!
//! Each `openid-config` becomes a discovery provider and `issuer-signing-keys` with
//! `n`/`e` a `jwks_file` provider. tollgate needs each provider's exact issuer, which APIM
//! could read from the discovery document: it is taken from `<issuers>` when one fits,
//! else a marked placeholder is written. A tollgate policy trusts one provider, so a
//! second provider gets a policy of its own. Required claims on `scp` or `scope` become
//! `scopes`, claims on `aud` become `audiences` when `<audiences>` is absent.

use roxmltree::Node;

use super::{FindingKind, Findings, Jwks, Names, unreadable};

mod claims;
mod keys;
mod settings;

use claims::{required_claims, scopes_and_claims, values};
use settings::Settings;

/// The placeholder written where tollgate needs a value APIM did not spell out.
pub const PLACEHOLDER: &str = "REPLACE-ME";

/// Signature algorithms APIM's `validate-jwt` verifies with asymmetric keys.
pub const APIM_ALGORITHMS: [&str; 3] = ["RS256", "RS512", "PS256"];

/// The providers and policies from one `<validate-jwt>`.
#[derive(Debug)]
pub struct Converted {
    /// Providers, in document order.
    pub providers: Vec<Provider>,
    /// One policy per provider, the first named like the validate-jwt.
    pub policies: Vec<Policy>,
    /// The JWKS of `issuer-signing-keys`, when there are usable keys.
    pub jwks: Option<Jwks>,
}

/// A provider to write.
#[derive(Clone, Debug)]
pub struct Provider {
    /// Name in the config.
    pub name: String,
    /// Its issuer; `None` writes the placeholder.
    pub issuer: Option<String>,
    /// `discovery: URL` or `jwks_file: FILE`.
    pub source: Source,
    /// APIM's `clock-skew`, in seconds.
    pub clock_skew: u64,
}

/// Where a provider's keys come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// An `openid-config` URL.
    Discovery(String),
    /// A JWKS written next to the config.
    JwksFile(String),
}

/// A policy to write.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Name in the config.
    pub name: String,
    /// The provider it trusts.
    pub provider: String,
    /// Accepted audiences; empty writes the placeholder.
    pub audiences: Vec<String>,
    /// Required scopes and the claim holding them.
    pub scopes: Option<Claim>,
    /// Other required claims.
    pub claims: Vec<Claim>,
    /// Token sources.
    pub token: Vec<TokenSource>,
    /// `failed-validation-httpcode`.
    pub status: u16,
    /// `failed-validation-error-message`.
    pub message: Option<String>,
}

/// A required claim.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The claim's name.
    pub name: String,
    /// `match="all"` (true) or `any`.
    pub all: bool,
    /// Accepted values.
    pub values: Vec<String>,
    /// APIM's `separator`.
    pub separator: Option<String>,
}

/// Where the token is.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// A header, with an auth scheme or as the whole value.
    Header {
        /// Lowercase header name.
        name: String,
        /// The scheme, for `Authorization`.
        scheme: Option<String>,
    },
    /// A query parameter.
    Query(String),
}

/// Converts one `<validate-jwt>`; policies and providers are named `base`, `base-2`, …,
/// skipping names already taken.
pub(crate) fn convert(
    node: Node<'_, '_>,
    base: &str,
    names: &mut Names,
    findings: &mut Findings,
) -> Converted {
    let settings = Settings::read(node, findings);

    let mut discovery = Vec::new();
    let mut issuers = Vec::new();
    let mut audiences = Vec::new();
    let mut claims = Vec::new();
    let mut signing_keys = None;
    for child in node.children().filter(Node::is_element) {
        match child.tag_name().name() {
            "openid-config" => {
                if let Some(url) = openid_config(child, findings) {
                    discovery.push((url, child));
                }
            }
            "issuers" => issuers.extend(values(child, "issuer", findings)),
            "audiences" => {
                let found = values(child, "audience", findings);
                audiences.extend(found.into_iter().map(|(value, _)| value));
            }
            "required-claims" => claims.extend(required_claims(child, findings)),
            "issuer-signing-keys" => signing_keys = Some(child),
            "decryption-keys" => findings.element(
                child,
                FindingKind::Unsupported,
                "encrypted tokens (JWE) are not accepted by tollgate",
            ),
            _ => findings.element(child, FindingKind::Unsupported, "unknown element"),
        }
    }

    let mut providers = Vec::new();
    for (url, _) in &discovery {
        providers.push(Provider {
            name: names.unique(base),
            issuer: None,
            source: Source::Discovery(url.clone()),
            clock_skew: settings.clock_skew,
        });
    }
    let mut jwks = None;
    if let Some(list) = signing_keys {
        let name = names.unique(base);
        jwks = keys::jwks(list, &name, findings);
        if let Some(jwks) = &jwks {
            providers.push(Provider {
                name,
                issuer: None,
                source: Source::JwksFile(jwks.file_name.clone()),
                clock_skew: settings.clock_skew,
            });
        }
    }
    if providers.is_empty() {
        findings.element(
            node,
            FindingKind::Placeholder,
            "no openid-config and no usable signing key: set the provider's discovery URL",
        );
        providers.push(Provider {
            name: names.unique(base),
            issuer: None,
            source: Source::Discovery(format!(
                "http://{PLACEHOLDER}.invalid/.well-known/openid-configuration"
            )),
            clock_skew: settings.clock_skew,
        });
    }
    assign_issuers(node, &mut providers, &discovery, issuers, findings);

    let (scopes, claims) = scopes_and_claims(claims, &mut audiences);
    if audiences.is_empty() {
        findings.element(
            node,
            FindingKind::Placeholder,
            "APIM checked no audience, tollgate requires one: set the aud your tokens carry",
        );
    }
    if providers.len() > 1 {
        findings.element(
            node,
            FindingKind::Differs,
            "a tollgate policy trusts one provider: wrote one policy per provider \
             (named like them), and Envoy names one per route",
        );
    }
    let policies = providers
        .iter()
        .map(|p| Policy {
            name: p.name.clone(),
            provider: p.name.clone(),
            audiences: audiences.clone(),
            scopes: scopes.clone(),
            claims: claims.clone(),
            token: settings.token.clone(),
            status: settings.status,
            message: settings.message.clone(),
        })
        .collect();
    Converted {
        providers,
        policies,
        jwks,
    }
}

fn openid_config(node: Node<'_, '_>, findings: &mut Findings) -> Option<String> {
    for attribute in node.attributes().filter(|a| a.name() != "url") {
        let why = "not converted: tollgate fetches keys in the background and reports \
                   failures on /readyz";
        findings.attribute(node, attribute.name(), FindingKind::Unsupported, why);
    }
    let Some(url) = node.attribute("url") else {
        findings.element(node, FindingKind::Unsupported, "no url attribute");
        return None;
    };
    if let Some(why) = unreadable(url) {
        findings.attribute(node, "url", FindingKind::Unsupported, why);
        return None;
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        findings.attribute(node, "url", FindingKind::Unsupported, "not an http(s) URL");
        return None;
    }
    Some(url.to_owned())
}

/// Gives each provider its issuer: the `<issuer>` that its discovery URL names (OpenID
/// Connect Discovery puts the document at the issuer plus a well-known path), else the one
/// issuer left for the one provider left, else the placeholder.
fn assign_issuers(
    node: Node<'_, '_>,
    providers: &mut [Provider],
    discovery: &[(String, Node<'_, '_>)],
    mut issuers: Vec<(String, Node<'_, '_>)>,
    findings: &mut Findings,
) {
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    for provider in providers.iter_mut() {
        let Source::Discovery(url) = &provider.source else {
            continue;
        };
        let published = url.strip_suffix("/.well-known/openid-configuration");
        if let Some(i) = issuers
            .iter()
            .position(|(iss, _)| published.is_some_and(|p| same(p, iss)))
        {
            provider.issuer = Some(issuers.remove(i).0);
        }
    }
    let open: Vec<usize> = (0..providers.len())
        .filter(|&i| providers[i].issuer.is_none())
        .collect();
    if let ([only], [(issuer, at)]) = (&open[..], &issuers[..]) {
        let provider = &mut providers[*only];
        // tollgate refuses an http issuer behind https discovery (a downgrade).
        let downgrade = matches!(&provider.source, Source::Discovery(url)
            if url.starts_with("https://") && issuer.starts_with("http://"));
        if downgrade {
            let why = "an http issuer behind https discovery is refused by tollgate";
            findings.element(*at, FindingKind::Unsupported, why);
        } else {
            provider.issuer = Some(issuer.clone());
        }
        issuers.clear();
    }
    for provider in providers.iter().filter(|p| p.issuer.is_none()) {
        let at = match &provider.source {
            Source::Discovery(url) => discovery
                .iter()
                .find(|(u, _)| u == url)
                .map_or(node, |(_, n)| *n),
            Source::JwksFile(_) => node,
        };
        let hint = match provider.source {
            Source::Discovery(_) => {
                " (`tollgate check-config --online` shows the one its discovery document publishes)"
            }
            Source::JwksFile(_) => "",
        };
        let why = format!(
            "provider {}: tollgate needs the exact iss of its tokens; wrote {PLACEHOLDER}{hint}",
            provider.name
        );
        findings.element(at, FindingKind::Placeholder, &why);
    }
    for (_, at) in issuers {
        let why = "fits no provider: a tollgate provider has exactly one issuer";
        findings.element(at, FindingKind::Unsupported, why);
    }
}
