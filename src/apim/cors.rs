//! APIM's `<cors>` policy converted to Envoy's per-route CORS policy.
//!
//! Envoy's CORS filter (`envoy.filters.http.cors`, placed before ext_authz) answers
//! preflights itself, as APIM evaluates only `cors` on a preflight. APIM's defaults are
//! written out: methods `GET, POST` when `allowed-methods` is absent, a preflight max age
//! of 0, no credentials, and unmatched preflights answered rather than forwarded. The
//! correlation header is always exposed, so browser code can quote it.

use roxmltree::Node;

use super::{FindingKind, Findings, text, unreadable};

/// The header tollgate returns the correlation id in, by default.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// A CORS policy in Envoy's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// Allowed origins; `None` allows any.
    pub origins: Option<Vec<String>>,
    /// `Access-Control-Allow-Methods`.
    pub methods: Vec<String>,
    /// `Access-Control-Allow-Headers`.
    pub headers: Vec<String>,
    /// `Access-Control-Expose-Headers`, the correlation header included.
    pub expose: Vec<String>,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: u64,
    /// `Access-Control-Allow-Credentials`.
    pub credentials: bool,
    /// Answer preflights from unmatched origins instead of forwarding them.
    pub terminate_unmatched: bool,
}

/// Converts a `<cors>` element; `None` when it allows no origin tollgate can write.
pub(crate) fn convert(node: Node<'_, '_>, findings: &mut Findings) -> Option<Cors> {
    let mut cors = Cors {
        origins: Some(Vec::new()),
        methods: vec!["GET".into(), "POST".into()],
        headers: Vec::new(),
        expose: Vec::new(),
        max_age: 0,
        credentials: false,
        terminate_unmatched: true,
    };
    for attribute in node.attributes() {
        let (name, value) = (attribute.name(), attribute.value());
        let flag = match (unreadable(value), value) {
            (Some(why), _) => Err(why),
            (None, "true") => Ok(true),
            (None, "false") => Ok(false),
            (None, _) => Err("must be true or false"),
        };
        match (name, flag) {
            ("allow-credentials", Ok(flag)) => cors.credentials = flag,
            ("terminate-unmatched-request", Ok(flag)) => cors.terminate_unmatched = flag,
            ("allow-credentials" | "terminate-unmatched-request", Err(why)) => {
                let why = format!("{why}; APIM's default written");
                findings.attribute(node, name, FindingKind::Unsupported, &why);
            }
            _ => findings.attribute(node, name, FindingKind::Unsupported, "unknown attribute"),
        }
    }

    for child in node.children().filter(Node::is_element) {
        match child.tag_name().name() {
            "allowed-origins" => cors.origins = origins(child, findings),
            "allowed-methods" => {
                cors.methods = items(child, "method", findings);
                if let Some(age) = child.attribute("preflight-result-max-age") {
                    match age.trim().parse() {
                        Ok(age) => cors.max_age = age,
                        Err(_) => findings.attribute(
                            child,
                            "preflight-result-max-age",
                            FindingKind::Unsupported,
                            "not a number of seconds; 0 written (APIM's default)",
                        ),
                    }
                }
            }
            "allowed-headers" => cors.headers = items(child, "header", findings),
            "expose-headers" => cors.expose = items(child, "header", findings),
            _ => findings.element(child, FindingKind::Unsupported, "unknown element"),
        }
    }
    if !cors
        .expose
        .iter()
        .any(|h| h.eq_ignore_ascii_case(CORRELATION_HEADER))
    {
        cors.expose.push(CORRELATION_HEADER.into());
    }
    if cors.origins.is_none() && cors.credentials {
        let why = "origin * with credentials is refused by APIM and browsers; credentials \
                   not allowed";
        findings.attribute(node, "allow-credentials", FindingKind::Unsupported, why);
        cors.credentials = false;
    }
    if cors.origins.as_ref().is_some_and(Vec::is_empty) {
        let why = "no origin allowed: the CORS snippet is not written";
        findings.element(node, FindingKind::Unsupported, why);
        return None;
    }
    Some(cors)
}

/// The allowed origins, normalised as browsers send `Origin`: no trailing slash and no
/// default port. `None` stands for `*`.
fn origins(list: Node<'_, '_>, findings: &mut Findings) -> Option<Vec<String>> {
    let values = items(list, "origin", findings);
    if values.iter().any(|o| o == "*") {
        return None;
    }
    let normalised = values
        .iter()
        .map(|origin| {
            let origin = origin.trim_end_matches('/').to_ascii_lowercase();
            match (origin.strip_suffix(":443"), origin.strip_suffix(":80")) {
                (Some(bare), _) if origin.starts_with("https://") => bare.to_owned(),
                (_, Some(bare)) if origin.starts_with("http://") => bare.to_owned(),
                _ => origin,
            }
        })
        .collect();
    Some(normalised)
}

/// The readable texts of a list's `item` children.
fn items(list: Node<'_, '_>, item: &str, findings: &mut Findings) -> Vec<String> {
    let mut found = Vec::new();
    for child in list.children().filter(Node::is_element) {
        let value = text(child);
        if !child.has_tag_name(item) {
            findings.element(child, FindingKind::Unsupported, "unknown element");
        } else if let Some(why) = unreadable(&value) {
            findings.element(child, FindingKind::Unsupported, why);
        } else if !value.is_empty() {
            found.push(value);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_xml(xml: &str) -> (Option<Cors>, Vec<String>) {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let mut findings = Findings::default();
        let cors = convert(doc.root_element(), &mut findings);
        (cors, findings.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn apim_defaults_are_written_out() {
        let (cors, findings) = convert_xml(
            "<cors><allowed-origins><origin>https://app.example.test:443/</origin>\
             </allowed-origins></cors>",
        );
        let cors = cors.unwrap();
        assert_eq!(cors.origins, Some(vec!["https://app.example.test".into()]));
        assert_eq!(cors.methods, ["GET", "POST"]);
        assert_eq!(cors.expose, [CORRELATION_HEADER]);
        assert_eq!((cors.max_age, cors.credentials), (0, false));
        assert!(cors.terminate_unmatched);
        assert!(findings.is_empty());
    }

    #[test]
    fn any_origin_with_credentials_drops_credentials() {
        let (cors, findings) = convert_xml(
            "<cors allow-credentials=\"true\"><allowed-origins><origin>*</origin>\
             </allowed-origins></cors>",
        );
        let cors = cors.unwrap();
        assert_eq!((cors.origins, cors.credentials), (None, false));
        assert_eq!(findings.len(), 1);
    }
}
