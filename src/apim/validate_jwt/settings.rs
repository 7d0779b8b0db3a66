//! The attributes of `<validate-jwt>`: where the token is, the failure answer, the clock
//! skew, and the checks tollgate always makes (expiration, signature).

use roxmltree::Node;

use super::TokenSource;
use crate::apim::{FindingKind, Findings, unreadable};

/// The attributes of `<validate-jwt>`.
pub(super) struct Settings {
    pub(super) token: Vec<TokenSource>,
    pub(super) status: u16,
    pub(super) message: Option<String>,
    pub(super) clock_skew: u64,
}

impl Settings {
    pub(super) fn read(node: Node<'_, '_>, findings: &mut Findings) -> Self {
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
