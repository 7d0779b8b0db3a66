//! Claim requirements: `all` or `any` of a list of values, over claims of any shape.
//!
//! A claim may be a string, a separated string (scopes are space-separated), or an
//! array of strings. Arrays with members of other types are malformed and never
//! stringified; a bare number or boolean matches its JSON text (`true`, `42`) for
//! ordinary claims but never for scopes.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

/// A claim named by a dotted path (`realm_access.roles`).
///
/// A claim whose own name contains dots (`https://example.test/roles`) is found too:
/// the literal name is tried before the path is split.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimPath {
    path: String,
}

impl ClaimPath {
    /// A path as written in the config file.
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The claim's value in a claim set, if present and not `null`.
    ///
    /// ```
    /// use tollgate::policy::ClaimPath;
    ///
    /// let claims = serde_json::json!({"realm_access": {"roles": ["admin"]}});
    /// let roles = ClaimPath::new("realm_access.roles");
    /// assert_eq!(roles.lookup(claims.as_object().unwrap()), Some(&serde_json::json!(["admin"])));
    /// ```
    pub fn lookup<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let found = claims.get(&self.path).or_else(|| {
            let mut parts = self.path.split('.');
            let mut value = claims.get(parts.next()?)?;
            for part in parts {
                value = value.as_object()?.get(part)?;
            }
            Some(value)
        });
        found.filter(|v| !v.is_null())
    }
}

impl fmt::Debug for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.path, f)
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

/// Which of the listed values a claim must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// Every value.
    All(Vec<String>),
    /// At least one value.
    Any(Vec<String>),
}

impl Match {
    /// Whether the claim's values satisfy this match. Comparison is exact and
    /// case-sensitive; there is no prefix or substring matching.
    pub fn is_met_by<S: AsRef<str>>(&self, held: &[S]) -> bool {
        let holds = |wanted: &String| held.iter().any(|h| h.as_ref() == wanted);
        match self {
            Match::All(wanted) => wanted.iter().all(holds),
            Match::Any(wanted) => wanted.iter().any(holds),
        }
    }

    /// The listed values.
    pub fn values(&self) -> &[String] {
        match self {
            Match::All(v) | Match::Any(v) => v,
        }
    }
}

/// A required claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The claim.
    pub claim: ClaimPath,
    /// The values it must hold.
    pub rule: Match,
    /// Split a string claim on this separator; `None` compares the whole string.
    pub separator: Option<String>,
}

/// Why a requirement is not met.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequirementError {
    /// The claim is absent or `null`.
    #[error("claim {0} is missing")]
    Missing(String),
    /// The claim is present but holds the wrong values.
    #[error("claim {0} does not hold the required values")]
    Mismatch(String),
    /// The claim has a shape no requirement can be checked against.
    #[error("claim {0} is malformed")]
    Malformed(String),
}

impl Requirement {
    /// Checks the requirement against a verified claim set.
    ///
    /// # Errors
    ///
    /// The [`RequirementError`] naming the claim (never its value).
    pub fn check(&self, claims: &Map<String, Value>) -> Result<(), RequirementError> {
        let name = || self.claim.as_str().to_owned();
        let value = self
            .claim
            .lookup(claims)
            .ok_or_else(|| RequirementError::Missing(name()))?;
        let held = claim_values(value, self.separator.as_deref(), Scalars::AsText)
            .ok_or_else(|| RequirementError::Malformed(name()))?;
        if self.rule.is_met_by(&held) {
            Ok(())
        } else {
            Err(RequirementError::Mismatch(name()))
        }
    }
}

/// Whether bare numbers and booleans may be compared as their JSON text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalars {
    /// `true` and `42` compare as those strings.
    AsText,
    /// Only strings are values; anything else is malformed.
    Refuse,
}

/// The values a claim holds: the pieces of a (separated) string, or an array's strings.
///
/// Returns `None` when the claim is malformed: an object, an array with a member that
/// is not a string, or a scalar that `scalars` refuses.
///
/// ```
/// use tollgate::policy::requirement::{Scalars, claim_values};
///
/// let scope = serde_json::json!("  orders.read   orders.write ");
/// let held = claim_values(&scope, Some(" "), Scalars::Refuse).unwrap();
/// assert_eq!(held, ["orders.read", "orders.write"]);
/// ```
pub fn claim_values<'a>(
    value: &'a Value,
    separator: Option<&str>,
    scalars: Scalars,
) -> Option<Vec<Cow<'a, str>>> {
    match value {
        Value::String(s) => Some(match separator {
            Some(" ") => s.split_ascii_whitespace().map(Cow::Borrowed).collect(),
            Some(sep) => s
                .split(sep)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(Cow::Borrowed)
                .collect(),
            None => vec![Cow::Borrowed(s.as_str())],
        }),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(Cow::Borrowed))
            .collect(),
        Value::Bool(_) | Value::Number(_) if scalars == Scalars::AsText => {
            Some(vec![Cow::Owned(value.to_string())])
        }
        Value::Bool(_) | Value::Number(_) | Value::Object(_) | Value::Null => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn requirement(claim: &str, rule: Match, separator: Option<&str>) -> Requirement {
        Requirement {
            claim: ClaimPath::new(claim),
            rule,
            separator: separator.map(Into::into),
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn all_and_any_over_every_claim_shape() {
        let all = Match::All(strings(&["a", "b"]));
        let any = Match::Any(strings(&["a", "z"]));
        let cases = [
            (json!("a b"), Some(" "), Ok(()), Ok(())),
            (json!(["a", "b", "c"]), None, Ok(()), Ok(())),
            (json!("a"), Some(" "), Err("mismatch"), Ok(())),
            (json!("a,b"), Some(","), Ok(()), Ok(())),
            (json!("a b"), None, Err("mismatch"), Err("mismatch")),
            (json!([1, "a"]), None, Err("malformed"), Err("malformed")),
            (json!({"a": 1}), None, Err("malformed"), Err("malformed")),
            (json!(null), None, Err("missing"), Err("missing")),
        ];
        for (value, sep, want_all, want_any) in cases {
            let claims = json!({ "c": value });
            let claims = claims.as_object().unwrap();
            for (rule, want) in [(&all, want_all), (&any, want_any)] {
                let got = requirement("c", rule.clone(), sep)
                    .check(claims)
                    .map_err(|e| match e {
                        RequirementError::Missing(_) => "missing",
                        RequirementError::Mismatch(_) => "mismatch",
                        RequirementError::Malformed(_) => "malformed",
                    });
                assert_eq!(got, want, "{value} {rule:?}");
            }
        }
    }

    #[test]
    fn matching_is_exact_and_case_sensitive() {
        let rule = Match::Any(strings(&["Values.Read"]));
        assert!(!rule.is_met_by(&["Values.ReadWrite"]));
        assert!(!rule.is_met_by(&["values.read"]));
        assert!(rule.is_met_by(&["Values.Read"]));
    }

    #[test]
    fn scalars_match_their_json_text_unless_refused() {
        let value = json!(true);
        assert_eq!(
            claim_values(&value, None, Scalars::AsText).unwrap(),
            ["true"]
        );
        assert_eq!(claim_values(&value, None, Scalars::Refuse), None);
        assert_eq!(
            claim_values(&json!(42), None, Scalars::AsText).unwrap(),
            ["42"]
        );
    }

    #[test]
    fn dotted_paths_and_literal_dotted_names() {
        let claims = json!({
            "realm_access": {"roles": ["admin"]},
            "https://example.test/roles": ["ops"],
        });
        let claims = claims.as_object().unwrap();
        assert_eq!(
            ClaimPath::new("realm_access.roles").lookup(claims),
            Some(&json!(["admin"]))
        );
        assert_eq!(
            ClaimPath::new("https://example.test/roles").lookup(claims),
            Some(&json!(["ops"]))
        );
        assert_eq!(ClaimPath::new("realm_access.missing").lookup(claims), None);
    }
}
