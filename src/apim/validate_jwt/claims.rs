//! `<audiences>`, `<issuers>` and `<required-claims>`: lists of values, and required
//! claims split into scopes, audiences and other claims.

use roxmltree::Node;

use super::Claim;
use crate::apim::{FindingKind, Findings, text, unreadable};

/// The readable texts of the `item` children of a list element, with their elements.
pub(super) fn values<'a, 'i>(
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

pub(super) fn required_claims(node: Node<'_, '_>, findings: &mut Findings) -> Vec<Claim> {
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
pub(super) fn scopes_and_claims(
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
