//! The human form of an explain report: one section per step, the check table, then
//! the answer.

use std::fmt;

use serde_json::Value;

use super::{Check, Report, Status};

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.request;
        let host = if r.host.is_empty() {
            "(no host)"
        } else {
            &r.host
        };
        writeln!(f, "request   {} {host} {}", r.method, r.path)?;
        match &self.policy.name {
            Some(name) => writeln!(f, "policy    {name}: {}", self.policy.reason)?,
            None => writeln!(f, "policy    none: {}", self.policy.reason)?,
        }
        if self.policy.anonymous {
            writeln!(f, "          anonymous: no token is looked at")?;
        }

        writeln!(
            f,
            "\ntoken     UNVERIFIED: decoded without checking the signature"
        )?;
        let header = self.token.header.as_ref().map(Value::to_string);
        let header = header.as_deref().unwrap_or("(does not decode)");
        writeln!(f, "  header  {header}")?;
        let claims = json(self.token.claims.as_ref()).replace('\n', "\n          ");
        writeln!(f, "  claims  {claims}")?;

        if let Some(p) = &self.provider {
            writeln!(
                f,
                "\nprovider  {}: issuer {:?}, algorithms [{}], clock skew {}s",
                p.name,
                p.issuer,
                p.algorithms.join(", "),
                p.clock_skew_s
            )?;
            match (&p.keys_from, &p.fetch_error) {
                (Some(origin), _) => writeln!(f, "  keys    from {origin}")?,
                (None, Some(error)) => writeln!(f, "  keys    cannot be fetched: {error}")?,
                (None, None) => {}
            }
            for key in &p.keys {
                let kid = key.kid.as_deref().unwrap_or("(no kid)");
                let alg = key.alg.as_deref().map(|a| format!(", alg {a}"));
                let mark = if key.selected { "  <- verifies" } else { "" };
                let alg = alg.unwrap_or_default();
                writeln!(f, "          kid {kid}: {}{alg}{mark}", key.kind)?;
            }
        }

        if !self.checks.is_empty() {
            writeln!(f, "\nchecks")?;
            let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0) + 2;
            for check in &self.checks {
                write_check(f, check, width)?;
            }
        }

        let a = &self.answer;
        match a.reason {
            Some(reason) => writeln!(f, "\nanswer    {} deny: {reason}", a.status)?,
            None => writeln!(f, "\nanswer    {} allow", a.status)?,
        }
        if let Some(challenge) = &a.challenge {
            writeln!(f, "  www-authenticate: {challenge}")?;
        }
        if let Some(body) = &a.body {
            writeln!(f, "  body: {body}")?;
        }
        if let Some(detail) = &a.detail {
            writeln!(f, "  logged detail: {detail}")?;
        }
        for (name, value) in &a.upstream_headers {
            writeln!(f, "  upstream {name}: {value}")?;
        }
        Ok(())
    }
}

fn write_check(f: &mut fmt::Formatter<'_>, check: &Check, width: usize) -> fmt::Result {
    let status = match check.status {
        Status::Pass => "pass",
        Status::Fail => "FAIL",
        Status::Skip => "skip",
    };
    write!(f, "  {status}  {:<width$}", check.name)?;
    let mut sep = "";
    if let Some(expected) = &check.expected {
        write!(f, "expected {expected}")?;
        sep = "; ";
    }
    if let Some(actual) = &check.actual {
        write!(f, "{sep}actual {actual}")?;
        sep = "; ";
    }
    if let Some(detail) = &check.detail {
        write!(f, "{sep}{detail}")?;
    }
    writeln!(f)
}

fn json(value: Option<&Value>) -> String {
    value
        .and_then(|v| serde_json::to_string_pretty(v).ok())
        .unwrap_or_else(|| "(does not decode)".to_owned())
}
