//! The policy's own checks: audience, scopes and other required claims.

use serde_json::Value;

use super::{Check, Claims, Status, status};
use crate::policy::requirement::{Scalars, claim_values};
use crate::policy::{Match, Requirement, TokenPolicy};
use crate::verify;

/// Rows for `aud`, the scopes and each required claim, in the pipeline's order.
pub(super) fn policy(policy: &TokenPolicy, claims: &Claims) -> Vec<Check> {
    let mut rows = vec![audience(policy, claims)];
    if let Some(required) = &policy.scopes {
        rows.push(scopes(policy, required, claims));
    }
    rows.extend(policy.claims.iter().map(|r| requirement(r, claims)));
    rows
}

fn audience(policy: &TokenPolicy, claims: &Claims) -> Check {
    let expected = format!("one of {}", quoted(&policy.audiences));
    let actual = claims
        .get("aud")
        .map_or("(absent)".to_owned(), Value::to_string);
    let row = Check::new("audience", Status::Pass)
        .expected(expected)
        .actual(actual);
    match verify::audience(claims, &policy.audiences) {
        Ok(()) => row,
        Err(error) => Check {
            status: Status::Fail,
            ..row.detail(error.to_string())
        },
    }
}

fn scopes(policy: &TokenPolicy, required: &Match, claims: &Claims) -> Check {
    let names: Vec<&str> = policy.scope_claims.iter().map(|c| c.as_str()).collect();
    let expected = format!("{} in {}", rule(required), names.join(" or "));
    let row = Check::new("scopes", Status::Fail).expected(expected);
    let Some((claim, value)) = policy
        .scope_claims
        .iter()
        .find_map(|c| Some((c, c.lookup(claims)?)))
    else {
        return row.actual("(no scope claim)");
    };
    let Some(held) = claim_values(value, Some(" "), Scalars::Refuse) else {
        return row
            .actual(format!("{claim}: {value}"))
            .detail(format!("claim {claim} is malformed"));
    };
    let held: Vec<String> = held.iter().map(|s| s.to_string()).collect();
    let row = row.actual(format!("{claim}: {}", quoted(&held)));
    if required.is_met_by(&held) {
        return Check {
            status: Status::Pass,
            ..row
        };
    }
    let missing: Vec<String> = required
        .values()
        .iter()
        .filter(|v| !held.contains(v))
        .cloned()
        .collect();
    row.detail(format!("missing {}", quoted(&missing)))
}

fn requirement(requirement: &Requirement, claims: &Claims) -> Check {
    let name = format!("claim {}", requirement.claim);
    let separator = requirement
        .separator
        .as_ref()
        .map(|s| format!(", split at {s:?}"))
        .unwrap_or_default();
    let expected = format!("{}{separator}", rule(&requirement.rule));
    let actual = match requirement.claim.lookup(claims) {
        None => "(absent)".to_owned(),
        Some(value) => {
            match claim_values(value, requirement.separator.as_deref(), Scalars::AsText) {
                Some(held) => {
                    let held: Vec<String> = held.iter().map(|s| s.to_string()).collect();
                    quoted(&held)
                }
                None => value.to_string(),
            }
        }
    };
    let result = requirement.check(claims);
    let row = Check::new(&name, status(result.is_ok()))
        .expected(expected)
        .actual(actual);
    match result {
        Ok(()) => row,
        Err(error) => row.detail(error.to_string()),
    }
}

fn rule(rule: &Match) -> String {
    match rule {
        Match::All(values) => format!("all of {}", quoted(values)),
        Match::Any(values) => format!("any of {}", quoted(values)),
    }
}

/// `["a", "b"]`.
fn quoted(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", items.join(", "))
}
