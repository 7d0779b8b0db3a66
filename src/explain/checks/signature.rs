//! Algorithm, key selection and signature: the steps that need the provider's keys.

use jsonwebtoken::Algorithm;

use super::{Check, KeyReport, ProviderReport, Status, status};
use crate::jwks::key_set::KeyKind;
use crate::jwks::{Candidates, KeySet};
use crate::policy::Provider;
use crate::verify::Jws;

/// Algorithm, key selection and signature.
pub(super) fn check(
    provider: &Provider,
    jws: Option<&Jws<'_>>,
    key_set: Option<&KeySet>,
    report: &mut ProviderReport,
    rows: &mut Vec<Check>,
) {
    let allowed: Vec<String> = provider
        .algorithms
        .iter()
        .map(|a| format!("{a:?}"))
        .collect();
    let expected = format!("one of [{}]", allowed.join(", "));
    let alg = jws.map(|jws| (jws, jws.algorithm(&provider.algorithms)));
    rows.push(match &alg {
        None => Check::new("algorithm", Status::Skip),
        Some((jws, result)) => Check::new("algorithm", status(result.is_ok()))
            .expected(expected)
            .actual(jws.alg_name()),
    });
    let Some((jws, Ok(alg))) = alg else {
        rows.push(Check::new("key", Status::Skip));
        rows.push(Check::new("signature", Status::Skip));
        return;
    };

    let Some(key_set) = key_set else {
        let detail = report.fetch_error.clone().unwrap_or_default();
        rows.push(Check::new("key", Status::Fail).detail(format!("no keys: {detail}")));
        rows.push(Check::new("signature", Status::Skip));
        return;
    };
    let origin = report.keys_from.clone().unwrap_or_default();
    let kid = jws.kid().map_or("(none)".to_owned(), |k| format!("{k:?}"));
    let expected = format!("a key for kid {kid} and {alg:?} at {origin}");
    let known: Vec<String> = key_set
        .keys()
        .iter()
        .map(|k| {
            k.kid
                .as_ref()
                .map_or("(none)".to_owned(), |k| format!("{k:?}"))
        })
        .collect();
    let candidates = match key_set.candidates(jws.kid(), alg) {
        Candidates::Keys(keys) => keys,
        other => {
            let why = match other {
                Candidates::UnknownKid => "no key with this kid",
                Candidates::KeyUnusable => "the key with this kid cannot verify this algorithm",
                _ => "no key fits this algorithm",
            };
            rows.push(
                Check::new("key", Status::Fail)
                    .expected(expected)
                    .actual(format!("kids [{}]", known.join(", ")))
                    .detail(why),
            );
            rows.push(Check::new("signature", Status::Skip));
            report.keys = keys(key_set, &[]);
            return;
        }
    };
    rows.push(
        Check::new("key", Status::Pass)
            .expected(expected)
            .actual(format!("{} candidate(s)", candidates.len())),
    );
    let verified = jws.verify(alg, &candidates);
    let selected: Vec<Option<String>> = verified
        .iter()
        .map(|k| k.kid.as_ref().map(ToString::to_string))
        .collect();
    report.keys = keys(key_set, &selected);
    rows.push(match verified {
        Ok(key) => Check::new("signature", Status::Pass).detail(format!(
            "verifies with {} key {}",
            kind(key.kind),
            key.kid
                .as_ref()
                .map_or("(no kid)".to_owned(), |k| format!("{k:?}"))
        )),
        Err(error) => Check::new("signature", Status::Fail).detail(error.to_string()),
    });
}

fn keys(key_set: &KeySet, selected: &[Option<String>]) -> Vec<KeyReport> {
    key_set
        .keys()
        .iter()
        .map(|key| {
            let kid = key.kid.as_ref().map(ToString::to_string);
            KeyReport {
                selected: selected.contains(&kid),
                kid,
                kind: kind(key.kind),
                alg: key.alg.map(|a: Algorithm| format!("{a:?}")),
            }
        })
        .collect()
}

fn kind(kind: KeyKind) -> String {
    match kind {
        KeyKind::Rsa(bits) => format!("RSA {bits} bits"),
        KeyKind::P256 => "EC P-256".into(),
        KeyKind::P384 => "EC P-384".into(),
        KeyKind::Ed25519 => "OKP Ed25519".into(),
    }
}
