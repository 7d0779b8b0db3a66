//! One `<validate-jwt>` policy converted to tollgate providers and policies.
//!
//! Each `openid-config` becomes a discovery provider and `issuer-signing-keys` with
//! `n`/`e` a `jwks_file` provider. tollgate needs each provider's exact issuer, which APIM
//! could read from the discovery document: it is taken from `<issuers>` when one fits,
//! else a marked placeholder is written. A tollgate policy trusts one provider, so a
//! second provider gets a policy of its own. Required claims on `scp` or `scope` become
//! `scopes`, claims on `aud` become `audiences` when `<audiences>` is absent.

use roxmltree::Node;

use super::{FindingKind, Findings, Jwks, Names, text, unreadable};

mod keys;

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

/// The attributes of `<validate-jwt>`.
struct Settings {
    token: Vec<TokenSource>,
    status: u16,
    message: Option<String>,
    clock_skew: u64,
}

impl Settings {
    fn read(node: Node<'_, '_>, findings: &mut Findings) -> Self {
        let mut settings = Self {
            token: Vec::new(),
            status: 401,
            message: None,
            clock_skew: 0,
        };
        let mut header = None;
        let mut scheme = None;
        for attribute in node.attributes() {
            let (name, value) = (attribute.name(), attribute.value());
            if let Some(why) = unreadable(value) {
                findings.attribute(node, name, FindingKind::Unsupported, why);
                continue;
            }
            let mut unsupported = |why: &str| {
                findings.attribute(node, name, FindingKind::Unsupported, why);
            };
            match name {
                "header-name" => header = Some(value.to_ascii_lowercase()),
                "require-scheme" => scheme = Some(value.to_owned()),
                "query-parameter-name" => settings.token.push(TokenSource::Query(value.into())),
                "token-value" => unsupported("tokens from expressions cannot be converted"),
                "failed-validation-httpcode" => match value.parse() {
                    Ok(status @ 400..=499) => settings.status = status,
                    _ => unsupported("tollgate overrides only with a 4xx status; 401 written"),
                },
                "failed-validation-error-message" => settings.message = Some(value.into()),
                "require-expiration-time" | "require-signed-tokens" => match value {
                    "true" => {}
                    "false" if name == "require-expiration-time" => {
                        unsupported("tollgate always requires exp: tokens without it are refused");
                    }
                    "false" => unsupported("tollgate always requires signed tokens"),
                    _ => unsupported("must be true or false; tollgate requires it anyway"),
                },
                "clock-skew" => match seconds(value) {
                    Some(skew) => settings.clock_skew = skew,
                    None => unsupported("not a number of seconds; 0s written (APIM's default)"),
                },
                "output-token-variable-name" => unsupported(
                    "tollgate has no policy variables: send claims upstream with forward_claims",
                ),
                _ => unsupported("unknown attribute"),
            }
        }

        match (header, scheme) {
            (Some(header), scheme) if header == "authorization" => {
                if scheme.is_none() {
                    let why = "no require-scheme: tollgate reads `Authorization: Bearer <token>`";
                    findings.attribute(node, "header-name", FindingKind::Differs, why);
                }
                let scheme = scheme.unwrap_or_else(|| "Bearer".into());
                let source = TokenSource::Header {
                    name: header,
                    scheme: Some(scheme),
                };
                settings.token.insert(0, source);
            }
            (Some(header), scheme) => {
                if scheme.is_some() {
                    let why = "ignored, as APIM ignores it for headers other than Authorization";
                    findings.attribute(node, "require-scheme", FindingKind::Differs, why);
                }
                let source = TokenSource::Header {
                    name: header,
                    scheme: None,
                };
                settings.token.insert(0, source);
            }
            (None, Some(_)) => {
                let why = "applies to header-name Authorization only; not converted";
                findings.attribute(node, "require-scheme", FindingKind::Unsupported, why);
            }
            (None, None) => {}
        }
        if settings.token.is_empty() {
            let why = "no header-name or query-parameter-name: tollgate reads the token from \
                       `Authorization: Bearer <token>`";
            findings.element(node, FindingKind::Differs, why);
            settings.token.push(TokenSource::Header {
                name: "authorization".into(),
                scheme: Some("Bearer".into()),
            });
        } else if settings.token.len() > 1 {
            let why = "tollgate accepts the token from either place, and refuses a request \
                       that sends both";
            findings.attribute(node, "query-parameter-name", FindingKind::Differs, why);
        }
        settings
    }
}

/// APIM's `clock-skew`: whole seconds, or a .NET TimeSpan (`[d.]hh:mm:ss`).
fn seconds(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse() {
        return Some(seconds);
    }
    let (days, time) = match value.split_once('.') {
        Some((days, time)) if time.contains(':') => (days.parse::<u64>().ok()?, time),
        _ => (0, value),
    };
    let parts: Vec<u64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [h, m, s] = parts[..] else {
        return None;
    };
    (m < 60 && s < 60).then_some(days * 86_400 + h * 3600 + m * 60 + s)
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

/// The readable texts of the `item` children of a list element, with their elements.
fn values<'a, 'i>(
    list: Node<'a, 'i>,
    item: &str,
    findings: &mut Findings,
) -> Vec<(String, Node<'a, 'i>)> {
    let mut found = Vec::new();
    for child in list.children().filter(Node::is_element) {
        if !child.has_tag_name(item) {
            findings.element(child, FindingKind::Unsupported, "unknown element");
            continue;
        }
        let value = text(child);
        match unreadable(&value) {
            Some(why) => findings.element(child, FindingKind::Unsupported, why),
            None if value.is_empty() => {
                findings.element(child, FindingKind::Unsupported, "empty value")
            }
            None => found.push((value, child)),
        }
    }
    found
}

fn required_claims(node: Node<'_, '_>, findings: &mut Findings) -> Vec<Claim> {
    let mut claims: Vec<Claim> = Vec::new();
    for claim in node.children().filter(Node::is_element) {
        if !claim.has_tag_name("claim") {
            findings.element(claim, FindingKind::Unsupported, "unknown element");
            continue;
        }
        let Some(name) = claim.attribute("name").filter(|n| !n.is_empty()) else {
            findings.element(claim, FindingKind::Unsupported, "claim without a name");
            continue;
        };
        let all = match claim.attribute("match") {
            None | Some("all") => true,
            Some("any") => false,
            Some(_) => {
                let why = "must be all or any; claim not converted";
                findings.attribute(claim, "match", FindingKind::Unsupported, why);
                continue;
            }
        };
        for attribute in claim.attributes() {
            if !matches!(attribute.name(), "name" | "match" | "separator") {
                let why = "unknown attribute";
                findings.attribute(claim, attribute.name(), FindingKind::Unsupported, why);
            }
        }
        let values: Vec<String> = values(claim, "value", findings)
            .into_iter()
            .map(|(value, _)| value)
            .collect();
        if values.is_empty() {
            findings.element(claim, FindingKind::Unsupported, "no readable value");
            continue;
        }
        if claims.iter().any(|c| c.name == name) {
            let why = "the same claim twice: tollgate keeps the first requirement";
            findings.element(claim, FindingKind::Unsupported, why);
            continue;
        }
        let separator = claim.attribute("separator").map(str::to_owned);
        if matches!(name, "scp" | "scope") && separator.is_none() {
            let why = "becomes scopes, split at spaces: APIM compared the whole value, so a \
                       token holding several scopes now matches too";
            findings.element(claim, FindingKind::Differs, why);
        }
        claims.push(Claim {
            name: name.to_owned(),
            all,
            values,
            separator,
        });
    }
    claims
}

/// Splits required claims into scopes, audiences and other claims.
///
/// `scp` or `scope` (split at spaces, or unsplit) become `scopes`, since tollgate then
/// answers 403 `insufficient_scope` naming them. `aud` becomes `audiences` when APIM
/// listed none; with `match="all"` over several values it also stays a claim.
fn scopes_and_claims(
    claims: Vec<Claim>,
    audiences: &mut Vec<String>,
) -> (Option<Claim>, Vec<Claim>) {
    let mut scopes = None;
    let mut rest = Vec::new();
    for claim in claims {
        let space = claim.separator.as_deref().is_none_or(|s| s == " ");
        if scopes.is_none() && matches!(claim.name.as_str(), "scp" | "scope") && space {
            scopes = Some(claim);
        } else if claim.name == "aud" && audiences.is_empty() {
            audiences.extend(claim.values.iter().cloned());
            if claim.all && claim.values.len() > 1 {
                rest.push(claim);
            }
        } else {
            rest.push(claim);
        }
    }
    (scopes, rest)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_in_seconds_or_timespan() {
        let cases = [
            ("0", Some(0)),
            ("300", Some(300)),
            ("00:05:00", Some(300)),
            ("1.00:00:30", Some(86_430)),
            ("5m", None),
            ("00:61:00", None),
            ("-1", None),
        ];
        for (value, expected) in cases {
            assert_eq!(seconds(value), expected, "{value}");
        }
    }
}
