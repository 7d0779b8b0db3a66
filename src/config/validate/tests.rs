//! Config validation: every problem reported with its key path.

use std::path::Path;

use crate::config::Config;

fn problems(yaml: &str) -> Vec<String> {
    match Config::parse(yaml, Path::new("tollgate.yaml")) {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

const PROVIDER: &str = "
providers:
  idp:
    issuer: https://idp.example.test/
    discovery: https://idp.example.test/.well-known/openid-configuration
";

#[test]
fn a_complete_config_is_accepted() {
    let yaml = format!(
        "{PROVIDER}
policies:
  orders-read:
    provider: idp
    audiences: [api://orders]
    scopes: {{ all: [orders.read] }}
    claims:
      tenant: {{ any: [acme] }}
    forward_claims: {{ sub: x-auth-sub }}
routes:
  - match: {{ prefix: /orders, methods: [get] }}
    policy: orders-read
  - match: {{ prefix: /health }}
    allow: anonymous
"
    );
    let config = Config::parse(&yaml, Path::new("t.yaml")).unwrap();
    assert_eq!(config.claim_headers, ["x-auth-sub"]);
    assert!(config.policies.get("anonymous").is_some());
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let yaml = "
server:
  grpc: nowhere
providers:
  idp:
    issuer: https://idp.example.test/
    discovery: https://idp.example.test/.well-known/openid-configuration
    jwks_uri: https://idp.example.test/jwks
    algorithms: [RS256, none, HS256]
policies:
  orders:
    provider: missing
    audiences: []
    scopes: { all: [] }
routes:
  - match: { prefix: orders }
    policy: orders
  - policy: nope
default: sometimes
";
    assert_eq!(
        problems(yaml),
        [
            "tollgate.yaml: server.grpc: \"nowhere\" is not an address like 127.0.0.1:9191",
            "tollgate.yaml: providers.idp: needs exactly one of discovery, jwks_uri or jwks_file",
            "tollgate.yaml: providers.idp.algorithms[1]: \"none\" is never accepted: tokens must be signed",
            "tollgate.yaml: providers.idp.algorithms[2]: \"HS256\" is HMAC, which cannot be verified with a provider's public keys",
            "tollgate.yaml: policies.orders.provider: names undefined provider \"missing\"",
            "tollgate.yaml: policies.orders.audiences: must list at least one non-empty audience",
            "tollgate.yaml: policies.orders.scopes: needs exactly one non-empty list: all or any",
            "tollgate.yaml: routes[0].match: paths must start with /",
            "tollgate.yaml: routes[1].policy: names undefined policy \"nope\"",
            "tollgate.yaml: default: must be deny, anonymous or a policy name, not \"sometimes\"",
        ]
    );
}

#[test]
fn unknown_keys_and_bad_yaml_are_refused() {
    let typo = problems(&format!("{PROVIDER}    audience: x\n"));
    assert_eq!(typo.len(), 1);
    assert!(typo[0].starts_with("tollgate.yaml: "), "{typo:?}");
    assert!(typo[0].contains("audience"), "{typo:?}");
    assert_eq!(problems("providers: [").len(), 1);
}

#[test]
fn http_issuer_behind_https_discovery_is_a_downgrade() {
    let yaml = "
providers:
  idp:
    issuer: http://idp.example.test
    discovery: https://idp.example.test/.well-known/openid-configuration
";
    assert_eq!(
        problems(yaml),
        ["tollgate.yaml: providers.idp.issuer: is http while discovery is https (a downgrade)"]
    );
}

#[test]
fn claim_headers_may_not_shadow_credentials_or_correlation() {
    let yaml = format!(
        "{PROVIDER}
policies:
  p:
    provider: idp
    audiences: [a]
    forward_claims: {{ sub: Authorization, jti: x-correlation-id }}
"
    );
    assert_eq!(
        problems(&yaml),
        [
            "tollgate.yaml: policies.p.forward_claims.jti: \"x-correlation-id\" cannot carry a claim",
            "tollgate.yaml: policies.p.forward_claims.sub: \"authorization\" cannot carry a claim",
        ]
    );
}
