//! `tollgate import-apim`: Azure API Management policies converted to tollgate config.
//!
//! [`import`] reads an APIM policy document (a whole `<policies>` document, or a bare
//! `<validate-jwt>` or `<cors>` element) and converts each `<validate-jwt>` of the
//! inbound section into tollgate providers and a policy ([`validate_jwt`]), and a
//! sibling `<cors>` into an Envoy per-route snippet ([`cors`]). The semantics follow
//! APIM's, including its defaults (a clock skew of 0 s, status 401 for every failure),
//! which are always written out because tollgate's own defaults differ.
//!
//! Nothing is dropped silently: every element or attribute that cannot be converted,
//! every placeholder written, and every place where tollgate will behave differently
//! becomes a [`Finding`] with its line in the XML. Writing files is the caller's job.

pub mod cors;
mod render;
pub mod validate_jwt;

use std::fmt;

use roxmltree::{Document, Node};

/// What the conversion needs besides the XML.
#[derive(Clone, Debug)]
pub struct Options {
    /// Base name of the policies and providers written.
    pub name: String,
    /// Where the XML came from, for the header comment of the output.
    pub source: String,
}

/// The result of an import.
#[derive(Debug)]
pub struct Import {
    /// The tollgate config (providers and policies), as YAML.
    pub config: String,
    /// The Envoy route snippet: ext_authz naming the policy, and CORS when the document
    /// has a `<cors>` policy.
    pub envoy: String,
    /// JWKS files built from `issuer-signing-keys`, which `config` names as `jwks_file`.
    pub jwks: Vec<Jwks>,
    /// Everything not converted as written, in document order.
    pub findings: Vec<Finding>,
}

/// A JWKS file to write next to the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwks {
    /// File name, relative to the config file.
    pub file_name: String,
    /// The JWKS document.
    pub json: String,
}

/// One thing the user has to know about the conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Line in the XML (1-based).
    pub line: u32,
    /// What kind of finding.
    pub kind: FindingKind,
    /// The element (`<decryption-keys>`) or attribute (`clock-skew`) concerned.
    pub subject: String,
    /// What happened and what to do.
    pub message: String,
}

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// Not converted: tollgate has no equivalent, or the value cannot be read offline.
    Unsupported,
    /// A value tollgate requires was missing and a marked placeholder was written.
    Placeholder,
    /// Converted, but tollgate behaves differently from APIM in the way described.
    Differs,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            FindingKind::Unsupported => "unsupported",
            FindingKind::Placeholder => "placeholder",
            FindingKind::Differs => "differs",
        };
        write!(
            f,
            "{}: {kind}: {}: {}",
            self.line, self.subject, self.message
        )
    }
}

/// Why a document could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The document is not well-formed XML.
    #[error("line {line}: not well-formed XML")]
    Xml {
        /// Where the parser stopped.
        line: u32,
        /// The parser's complaint.
        #[source]
        source: roxmltree::Error,
    },
    /// The document has no `<validate-jwt>` policy to convert.
    #[error("no validate-jwt policy in the inbound section")]
    NoValidateJwt,
}

/// Names given out so far, so every provider and policy gets its own.
#[derive(Debug, Default)]
pub(crate) struct Names(std::collections::BTreeSet<String>);

impl Names {
    /// `base` if still free, else `base-2`, `base-3`, ….
    pub(crate) fn unique(&mut self, base: &str) -> String {
        let name = (1..)
            .map(|i| match i {
                1 => base.to_owned(),
                _ => format!("{base}-{i}"),
            })
            .find(|name| !self.0.contains(name))
            .unwrap_or_else(|| base.to_owned());
        self.0.insert(name.clone());
        name
    }
}

/// Findings collected while walking the document.
#[derive(Debug, Default)]
pub(crate) struct Findings(Vec<Finding>);

impl Findings {
    /// Records a finding about an element.
    pub(crate) fn element(&mut self, node: Node<'_, '_>, kind: FindingKind, message: &str) {
        self.0.push(Finding {
            line: line(node, node.range().start),
            kind,
            subject: format!("<{}>", node.tag_name().name()),
            message: message.to_owned(),
        });
    }

    /// Records a finding about an attribute of `node`.
    pub(crate) fn attribute(
        &mut self,
        node: Node<'_, '_>,
        name: &str,
        kind: FindingKind,
        message: &str,
    ) {
        let at = node
            .attributes()
            .find(|a| a.name() == name)
            .map_or(node.range().start, |a| a.range().start);
        self.0.push(Finding {
            line: line(node, at),
            kind,
            subject: name.to_owned(),
            message: message.to_owned(),
        });
    }
}

/// Converts an APIM policy document.
///
/// # Errors
///
/// [`ImportError`] when the XML is not well-formed or holds no `<validate-jwt>`.
pub fn import(xml: &str, options: &Options) -> Result<Import, ImportError> {
    let doc = Document::parse(xml).map_err(|source| ImportError::Xml {
        line: source.pos().row,
        source,
    })?;
    let mut findings = Findings::default();
    let (jwts, cors_nodes) = policies(doc.root_element(), &mut findings);
    if jwts.is_empty() {
        return Err(ImportError::NoValidateJwt);
    }

    let mut names = Names::default();
    let mut converted: Vec<validate_jwt::Converted> = Vec::new();
    for node in &jwts {
        let jwt = validate_jwt::convert(*node, &options.name, &mut names, &mut findings);
        if !converted.is_empty() {
            let why = format!(
                "APIM requires every validate-jwt to pass, tollgate applies one policy per \
                 request: written as policy {}, which Envoy must name separately",
                jwt.policies[0].name
            );
            findings.element(*node, FindingKind::Differs, &why);
        }
        converted.push(jwt);
    }
    let cors = cors_nodes
        .first()
        .and_then(|n| cors::convert(*n, &mut findings));
    for extra in cors_nodes.iter().skip(1) {
        let message = "only the first cors policy applies; this one is not converted";
        findings.element(*extra, FindingKind::Unsupported, message);
    }

    let jwks = converted.iter_mut().filter_map(|c| c.jwks.take()).collect();
    let mut findings = findings.0;
    findings.sort_by_key(|f| f.line);
    Ok(Import {
        config: render::config(&options.source, &converted),
        envoy: render::envoy(
            &options.source,
            &converted[0].policies[0].name,
            cors.as_ref(),
        ),
        jwks,
        findings,
    })
}

/// The `<validate-jwt>` and `<cors>` policies of the inbound section, reporting every
/// other policy found.
fn policies<'a, 'i>(
    root: Node<'a, 'i>,
    findings: &mut Findings,
) -> (Vec<Node<'a, 'i>>, Vec<Node<'a, 'i>>) {
    let mut jwts = Vec::new();
    let mut cors = Vec::new();
    let inbound: Vec<Node<'a, 'i>> = match root.tag_name().name() {
        "validate-jwt" | "cors" => vec![root],
        "policies" => {
            let mut inbound = Vec::new();
            for section in root.children().filter(Node::is_element) {
                if section.has_tag_name("inbound") {
                    inbound.extend(section.children().filter(Node::is_element));
                    continue;
                }
                for policy in section.children().filter(Node::is_element) {
                    if !policy.has_tag_name("base") {
                        let message = "not converted: only inbound validate-jwt and cors are";
                        findings.element(policy, FindingKind::Unsupported, message);
                    }
                }
            }
            inbound
        }
        _ => root.children().filter(Node::is_element).collect(),
    };
    for policy in inbound {
        match policy.tag_name().name() {
            "validate-jwt" => jwts.push(policy),
            "cors" => cors.push(policy),
            "base" => findings.element(
                policy,
                FindingKind::Unsupported,
                "policies of enclosing scopes (global, product, API) are not imported: \
                 import their policy documents too",
            ),
            _ if policy.descendants().any(|d| d.has_tag_name("validate-jwt")) => {
                findings.element(
                    policy,
                    FindingKind::Unsupported,
                    "not converted, nor the validate-jwt inside it: tollgate has no \
                     conditional policies (express conditions as routes)",
                );
            }
            _ => findings.element(
                policy,
                FindingKind::Unsupported,
                "not converted: not a token or CORS check",
            ),
        }
    }
    (jwts, cors)
}

/// The 1-based line of a byte offset in the node's document.
fn line(node: Node<'_, '_>, at: usize) -> u32 {
    node.document().text_pos_at(at).row
}

/// The text content of an element, trimmed.
pub(crate) fn text(node: Node<'_, '_>) -> String {
    let text: String = node
        .children()
        .filter(Node::is_text)
        .filter_map(|t| t.text())
        .collect();
    text.trim().to_owned()
}

/// Why a value cannot be read outside API Management, if it cannot.
pub(crate) fn unreadable(value: &str) -> Option<&'static str> {
    let value = value.trim();
    if value.starts_with("@(") || value.starts_with("@{") {
        Some("policy expressions are not evaluated outside API Management: write the value")
    } else if value.contains("{{") {
        Some("named values cannot be resolved outside API Management: write the value")
    } else {
        None
    }
}

/// A policy or provider name from a file name: lowercase letters, digits and dashes.
pub fn name_from_file(stem: &str) -> String {
    let name: String = stem
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "imported".to_owned()
    } else {
        name.to_owned()
    }
}
