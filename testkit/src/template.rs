//! `${NAME}` placeholders in config files, filled at run time.
//!
//! The Envoy configs in `envoy/` and the tollgate config in `examples/` are real YAML with
//! placeholders such as `${TOLLGATE_PORT}` where a port or a path is known only when the
//! stack starts. `scripts/demo` fills them in bash; tests and benchmarks call [`render`].
//! A placeholder without a value is an error, so a renamed one never reaches Envoy as text.

use std::fmt;

/// A placeholder that the template uses and the caller gave no value for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingValue {
    /// The placeholder's name, without `${` and `}`.
    pub name: String,
    /// 1-based line of its first use.
    pub line: usize,
}

impl fmt::Display for MissingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: no value for ${{{}}}", self.line, self.name)
    }
}

impl std::error::Error for MissingValue {}

/// Replaces every `${NAME}` of `template` (NAME of `A-Z`, `0-9` and `_`) with its value
/// from `values`. Other text, including a `$` not followed by such a placeholder, is
/// kept as is.
///
/// ```
/// let text = testkit::template::render("port: ${PORT}", &[("PORT", "8080")]).unwrap();
/// assert_eq!(text, "port: 8080");
/// ```
///
/// # Errors
///
/// [`MissingValue`] for the first placeholder that `values` does not name.
pub fn render(template: &str, values: &[(&str, &str)]) -> Result<String, MissingValue> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let (name, tail) = after.split_at(name_len);
        if name.is_empty() || !tail.starts_with('}') {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some((_, value)) = values.iter().find(|(n, _)| *n == name) else {
            let consumed = template.len() - rest.len() + start;
            let line = template[..consumed].matches('\n').count() + 1;
            return Err(MissingValue {
                name: name.to_owned(),
                line,
            });
        };
        out.push_str(value);
        rest = &tail[1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_replaced() {
        let text = render("a: ${A}\nb: ${B}:${A}\n", &[("A", "1"), ("B", "two")]);

        assert_eq!(text.unwrap(), "a: 1\nb: two:1\n");
    }

    #[test]
    fn a_placeholder_without_value_is_an_error_with_its_line() {
        let error = render("a: ${A}\nb: ${MISSING}\n", &[("A", "1")]).unwrap_err();

        assert_eq!(
            error,
            MissingValue {
                name: "MISSING".into(),
                line: 2
            }
        );
    }

    #[test]
    fn other_dollar_signs_are_kept() {
        let text = render("cost: $5 ${lower} ${ A} $${X}", &[("X", "x")]);

        assert_eq!(text.unwrap(), "cost: $5 ${lower} ${ A} $x");
    }
}
