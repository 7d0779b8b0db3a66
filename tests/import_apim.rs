//! `tollgate import-apim`: APIM policies modelled on APIM's documented examples become
//! config that `check-config` accepts, with every unconverted part reported by line.

// Helpers outside the test functions unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tollgate::apim::{self, Import, Options};
use tollgate::config::Config;
use tollgate::policy::{Access, ClaimPath, KeySource, Match, Requirement, TokenPolicy};
use tollgate::token::TokenSource;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/apim/{name}.xml"))
}

fn import(name: &str) -> Import {
    let xml = std::fs::read_to_string(fixture(name)).unwrap();
    let options = Options {
        name: name.to_owned(),
        source: format!("{name}.xml"),
    };
    apim::import(&xml, &options).unwrap()
}

fn report(import: &Import) -> Vec<String> {
    import.findings.iter().map(ToString::to_string).collect()
}

/// Writes the import to a directory as the CLI does and loads it as tollgate would.
fn load(import: &Import) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    for jwks in &import.jwks {
        std::fs::write(dir.path().join(&jwks.file_name), &jwks.json).unwrap();
    }
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, &import.config).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{}", import.config));
    (dir, config)
}

fn token_policy<'a>(config: &'a Config, name: &str) -> &'a TokenPolicy {
    match &config.policies.get(name).unwrap().access {
        Access::Token(policy) => policy,
        Access::Anonymous => panic!("{name} is anonymous"),
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn auth0_policy_becomes_this_exact_config() {
    let import = import("auth0");

    let (_dir, config) = load(&import);

    assert_eq!(
        import.config,
        r#"# tollgate config imported from auth0.xml by `tollgate import-apim`.
# Fill in every REPLACE-ME, read the report printed with it, then run
# `tollgate check-config --config FILE --online`.

providers:
  auth0:
    issuer: https://example-tenant.eu.auth0.com/
    discovery: https://example-tenant.eu.auth0.com/.well-known/openid-configuration
    algorithms: [RS256, RS512, PS256]  # what APIM's validate-jwt verifies
    clock_skew: 30s  # APIM's clock-skew (default 0 s; tollgate's own default is 60s)

policies:
  auth0:
    provider: auth0
    audiences: [https://orders.example.test]
    scopes: { all: [read:orders] }
    scope_claims: [scope]
    token:
      - { header: authorization, scheme: Bearer }
    on_failure: { status: 401, message: "Unauthorized" }  # APIM answers every failure with this status
"#
    );
    assert_eq!(
        report(&import),
        [
            "3: unsupported: output-token-variable-name: tollgate has no policy variables: \
          send claims upstream with forward_claims"
        ]
    );
    let policy = token_policy(&config, "auth0");
    assert_eq!(policy.scopes, Some(Match::All(strings(&["read:orders"]))));
    assert_eq!(config.providers[0].clock_skew, Duration::from_secs(30));
}

#[test]
fn entra_id_without_issuers_gets_a_marked_placeholder_issuer() {
    let import = import("entra-id");

    let (_dir, config) = load(&import);

    let provider = &config.providers[0];
    assert_eq!(provider.issuer, "REPLACE-ME");
    assert_eq!(
        provider.source,
        KeySource::Discovery(
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/.well-known/openid-configuration"
                .into()
        )
    );
    assert_eq!(provider.clock_skew, Duration::ZERO);
    let policy = token_policy(&config, "entra-id");
    assert_eq!(policy.audiences, ["6e0b1a2c-58f4-4d1b-9e35-0c3f2d7a9b11"]);
    assert_eq!(policy.failure_status, Some(401));
    assert_eq!(
        policy.failure_message.as_deref(),
        Some("Unauthorized. Access token is missing or invalid.")
    );
    assert_eq!(
        report(&import),
        [
            "5: unsupported: <base>: policies of enclosing scopes (global, product, API) are \
             not imported: import their policy documents too",
            "6: differs: header-name: no require-scheme: tollgate reads `Authorization: Bearer \
             <token>`",
            "7: placeholder: <openid-config>: provider entra-id: tollgate needs the exact iss \
             of its tokens; wrote REPLACE-ME (`tollgate check-config --online` shows the one \
             its discovery document publishes)",
            "17: unsupported: <rate-limit>: not converted: not a token or CORS check",
            "24: unsupported: <set-header>: not converted: only inbound validate-jwt and cors are",
        ]
    );
}

#[test]
fn required_claims_keep_match_any_all_and_separator() {
    let import = import("claims");

    let (_dir, config) = load(&import);

    let policy = token_policy(&config, "claims");
    assert_eq!(policy.audiences, ["api://orders"]);
    assert_eq!(
        policy.scopes,
        Some(Match::Any(strings(&["orders.read", "orders.write"])))
    );
    assert_eq!(policy.scope_claims, [ClaimPath::new("scp")]);
    assert_eq!(
        policy.claims,
        [
            Requirement {
                claim: ClaimPath::new("group"),
                rule: Match::Any(strings(&["finance", "logistics"])),
                separator: None,
            },
            Requirement {
                claim: ClaimPath::new("roles"),
                rule: Match::All(strings(&["Orders.Read", "Orders.Approve"])),
                separator: Some(",".into()),
            },
        ]
    );
    assert_eq!(
        report(&import),
        [
            "21: differs: <claim>: becomes scopes, split at spaces: APIM compared the whole \
             value, so a token holding several scopes now matches too",
            "25: unsupported: match: must be all or any; claim not converted",
        ]
    );
}

#[test]
fn header_name_and_query_parameter_become_token_sources() {
    let import = import("header-query");

    let (_dir, config) = load(&import);

    let policy = token_policy(&config, "header-query");
    assert_eq!(
        policy.sources,
        [
            TokenSource::Header {
                name: "x-api-token".into(),
                scheme: None
            },
            TokenSource::Query("access_token".into()),
        ]
    );
    assert_eq!(policy.audiences, ["shop-api"]);
    assert_eq!(policy.failure_status, Some(403));
    assert_eq!(config.providers[0].clock_skew, Duration::from_secs(120));
    assert_eq!(
        report(&import),
        [
            "3: differs: require-scheme: ignored, as APIM ignores it for headers other than \
             Authorization",
            "3: differs: query-parameter-name: tollgate accepts the token from either place, \
             and refuses a request that sends both",
            "7: unsupported: <audience>: policy expressions are not evaluated outside API \
             Management: write the value",
        ]
    );
}

#[test]
fn issuer_signing_keys_with_n_and_e_become_a_jwks_file() {
    let import = import("signing-keys");

    let (dir, config) = load(&import);

    let provider = &config.providers[0];
    assert_eq!(provider.issuer, "https://contoso.example.test/");
    assert_eq!(
        provider.source,
        KeySource::JwksFile(dir.path().join("signing-keys-jwks.json"))
    );
    let jwks: serde_json::Value = serde_json::from_str(&import.jwks[0].json).unwrap();
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, [Some("contoso-2024"), None]);
    let keys = tollgate::jwks::KeySet::parse(import.jwks[0].json.as_bytes()).unwrap();
    assert_eq!((keys.keys().len(), keys.skipped().len()), (2, 0));
    assert_eq!(
        report(&import),
        [
            "4: unsupported: require-expiration-time: tollgate always requires exp: tokens \
             without it are refused",
            "7: differs: <key>: no id: tollgate checks a token that names a kid only against \
             the key with that kid, so add the kid as id (tokens without kid are tried \
             against this key)",
            "8: unsupported: <key>: named values cannot be resolved outside API Management: \
             write the value",
            "9: unsupported: <key>: symmetric (base64) keys are not supported: tollgate \
             verifies asymmetric signatures only",
            "10: unsupported: certificate-id: certificates stored in API Management cannot be \
             read: write the key's modulus and exponent as n and e",
            "12: unsupported: <decryption-keys>: encrypted tokens (JWE) are not accepted by \
             tollgate",
        ]
    );
}

#[test]
fn cors_sibling_becomes_this_envoy_snippet() {
    let import = import("cors");

    let (_dir, config) = load(&import);

    assert_eq!(
        import.envoy,
        r#"# Envoy route settings imported from cors.xml by `tollgate import-apim`.
# Merge them into the route (or virtual host) that served this API in APIM.
typed_per_filter_config:
  envoy.filters.http.ext_authz:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
    check_settings:
      context_extensions: { policy: cors }
  # Needs envoy.filters.http.cors in http_filters, before ext_authz: it answers
  # preflights itself, as APIM evaluates only cors on a preflight.
  envoy.filters.http.cors:
    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
    allow_origin_string_match:
      - exact: "http://localhost:8080"
      - exact: "https://app.example.test"
    allow_methods: "GET, POST, PATCH, DELETE"
    allow_headers: "content-type, accept, authorization"
    expose_headers: "x-request-id, x-correlation-id"
    max_age: "300"
    allow_credentials: true
    forward_not_matching_preflights: false
"#
    );
    assert!(report(&import).is_empty());
    assert!(config.policies.get("cors").is_some());
}

#[test]
fn every_validate_jwt_and_provider_gets_its_own_name() {
    let xml = r#"<policies><inbound>
        <validate-jwt header-name="Authorization" require-scheme="Bearer">
            <openid-config url="https://a.example.test/.well-known/openid-configuration" />
            <openid-config url="https://b.example.test/.well-known/openid-configuration" />
            <audiences><audience>api</audience></audiences>
            <issuers><issuer>https://b.example.test</issuer></issuers>
        </validate-jwt>
        <validate-jwt header-name="Authorization" require-scheme="Bearer">
            <openid-config url="https://c.example.test/.well-known/openid-configuration" />
            <audiences><audience>api</audience></audiences>
            <issuers><issuer>https://c.example.test</issuer></issuers>
        </validate-jwt>
    </inbound></policies>"#;
    let options = Options {
        name: "api".into(),
        source: "api.xml".into(),
    };

    let import = apim::import(xml, &options).unwrap();

    let (_dir, config) = load(&import);
    let mut issuers: Vec<_> = config
        .providers
        .iter()
        .map(|p| (p.name.to_string(), p.issuer.clone()))
        .collect();
    issuers.sort();
    assert_eq!(
        issuers,
        [
            ("api".to_owned(), "REPLACE-ME".to_owned()),
            ("api-2".to_owned(), "https://b.example.test".to_owned()),
            ("api-3".to_owned(), "https://c.example.test".to_owned()),
        ]
    );
    assert_eq!(
        report(&import),
        [
            "2: differs: <validate-jwt>: a tollgate policy trusts one provider: wrote one \
             policy per provider (named like them), and Envoy names one per route",
            "3: placeholder: <openid-config>: provider api: tollgate needs the exact iss of \
             its tokens; wrote REPLACE-ME (`tollgate check-config --online` shows the one its \
             discovery document publishes)",
            "8: differs: <validate-jwt>: APIM requires every validate-jwt to pass, tollgate \
             applies one policy per request: written as policy api-3, which Envoy must name \
             separately",
        ]
    );
}

#[test]
fn malformed_xml_names_the_line() {
    let xml = "<validate-jwt>\n  <audiences>\n</validate-jwt>";
    let options = Options {
        name: "x".into(),
        source: "x.xml".into(),
    };

    let error = apim::import(xml, &options).unwrap_err();

    assert_eq!(error.to_string(), "line 3: not well-formed XML");
}

#[test]
fn cli_writes_files_reports_on_stderr_and_check_config_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("keys.yaml");

    let import = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("import-apim")
        .arg(fixture("signing-keys"))
        .args(["--name", "contoso", "--output"])
        .arg(&output)
        .output()
        .unwrap();

    assert!(import.status.success());
    assert!(import.stdout.is_empty());
    let stderr = String::from_utf8(import.stderr).unwrap();
    let fixture = fixture("signing-keys").display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[..3],
        [
            format!("wrote {}", dir.path().join("contoso-jwks.json").display()),
            format!("wrote {}", output.display()),
            format!("wrote {}", dir.path().join("contoso-envoy.yaml").display()),
        ]
    );
    assert_eq!(lines.len(), 3 + 6);
    assert_eq!(
        lines[3],
        format!(
            "{fixture}:4: unsupported: require-expiration-time: tollgate always requires exp: \
             tokens without it are refused"
        )
    );
    let check = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check-config", "--config"])
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(check.stdout).unwrap(),
        format!("{}: ok (1 providers, 1 policies)\n", output.display())
    );
    assert!(check.status.success());
}
