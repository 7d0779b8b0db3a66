//! The cases of `shared/cases/token-cases.jsonl` that concern the Check service, each
//! variant as a request to the real server with its exact expected answer.

mod support;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dev_idp::{DevIdp, KeyAlg};
use serde_json::{Value, json};
use support::{Answer, TestServer, config, get, valid_claims, with};

const ALLOW: (u16, &str) = (200, "");

async fn setup() -> (DevIdp, TestServer) {
    let idp = DevIdp::start().await.expect("idp starts");
    let server = TestServer::start(&config(&idp)).await;
    (idp, server)
}

fn outcome(answer: &Answer) -> (u16, String) {
    (answer.status(), answer.reason())
}

async fn check_token(server: &TestServer, token: &str) -> (u16, String) {
    outcome(&server.check(get("/orders").bearer(token)).await)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// BR-01: `aud` as string, array, empty, absent, with non-strings, other case, null.
#[tokio::test]
async fn br01_audience_shapes() {
    let (idp, server) = setup().await;
    let cases = [
        (json!("api://orders"), ALLOW),
        (json!(["api://billing", "api://orders"]), ALLOW),
        (json!(["api://billing"]), (401, "audience_not_accepted")),
        (json!([]), (401, "audience_not_accepted")),
        (Value::Null, (401, "audience_not_accepted")),
        (json!([123, "api://orders"]), (401, "claim_malformed")),
        (json!("API://ORDERS"), (401, "audience_not_accepted")),
    ];
    for (aud, (status, reason)) in cases {
        let mut claims = valid_claims(&idp);
        claims["aud"] = aud.clone();
        assert_eq!(
            check_token(&server, &idp.mint(&claims)).await,
            (status, reason.into()),
            "{aud}"
        );
    }
    let absent = with(valid_claims(&idp), json!({"aud": null}));
    let answer = server
        .check(get("/orders").bearer(&idp.mint(&absent)))
        .await;
    assert_eq!(outcome(&answer), (401, "audience_not_accepted".into()));
    assert_eq!(answer.body()["error_description"], "audience not accepted");
}

/// BR-03: scopes in `scope` or `scp`, as strings or arrays; token-level matching only.
#[tokio::test]
async fn br03_scope_shapes() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "scopes: { all: [orders.read] }",
        "scopes: { any: [Values.Read] }",
    );
    let server = TestServer::start(&yaml).await;
    let cases = [
        (
            json!({"scope": null, "scp": "Values.Read Values.Write"}),
            ALLOW,
        ),
        (json!({"scope": ["Values.Read", "Values.Write"]}), ALLOW),
        (json!({"scope": null, "scp": ["Values.Read"]}), ALLOW),
        (
            json!({"scope": "Values.ReadWrite"}),
            (403, "insufficient_scope"),
        ),
        (json!({"scope": "  Values.Write   Values.Read "}), ALLOW),
        (
            json!({"scope": [123, "Values.Read"]}),
            (401, "claim_malformed"),
        ),
        // The first configured scope claim that is present wins (`scope`, then `scp`).
        (
            json!({"scope": "Values.Write", "scp": "Values.Read"}),
            (403, "insufficient_scope"),
        ),
    ];
    for (changes, (status, reason)) in cases {
        let token = idp.mint(&with(valid_claims(&idp), changes.clone()));
        assert_eq!(
            check_token(&server, &token).await,
            (status, reason.into()),
            "{changes}"
        );
    }

    let yaml = config(&idp).replace(
        "scopes: { all: [orders.read] }",
        "scopes: { all: [Values.Read, Values.Write] }",
    );
    let server = TestServer::start(&yaml).await;
    let answer = server
        .check(
            get("/orders")
                .bearer(&idp.mint(&with(valid_claims(&idp), json!({"scope": "Values.Read"})))),
        )
        .await;
    assert_eq!(answer.status(), 403);
    let expected = concat!(
        r#"error="insufficient_scope", error_description="token lacks a required scope", "#,
        r#"scope="Values.Read Values.Write""#
    );
    assert!(answer.challenge().unwrap().ends_with(expected));
}

/// BR-08: tokens without `kid` against sets with and without kids.
#[tokio::test]
async fn br08_kidless_tokens() {
    let (idp, server) = setup().await;
    let second = idp.add_key(KeyAlg::Rs256);
    let unpublished = idp.add_key(KeyAlg::Rs256);
    idp.remove_key(&unpublished);
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let no_kid = json!({"alg": "RS256"});
    let claims = valid_claims(&idp);

    // k2 was published after the server loaded keys; a kid-less token never refetches,
    // so the one-key set at start cannot verify it, the refreshed one can.
    let b1 = idp.mint_with_header(&second, &no_kid, &claims);
    let b2 = idp.mint_with_header(&unpublished, &no_kid, &claims);
    let a1 = idp.mint_with_header(&idp.signing_kid(), &no_kid, &claims);

    assert_eq!(check_token(&server, &a1).await, (200, String::new()));
    assert_eq!(
        check_token(&server, &b2).await,
        (401, "signature_invalid".into())
    );
    assert_eq!(
        check_token(&server, &b1).await,
        (401, "signature_invalid".into())
    );
}

/// BR-12: encryption keys in the JWKS are skipped and never verify.
#[tokio::test]
async fn br12_encryption_keys_are_never_candidates() {
    let idp = DevIdp::start().await.unwrap();
    let enc = idp.add_key(KeyAlg::Rs256);
    let mut enc_jwk = idp.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == enc.as_str())
        .unwrap()
        .clone();
    idp.remove_key(&enc);
    enc_jwk["use"] = json!("enc");
    enc_jwk["alg"] = json!("RSA-OAEP");
    idp.publish_extra_jwk(enc_jwk);
    idp.publish_extra_jwk(json!({
        "kid": "enc-3", "kty": "EC", "use": "enc", "alg": "ECDH-ES+A128KW",
        "crv": "P-256", "x": "AA", "y": "AA",
    }));
    let server = TestServer::start(&config(&idp)).await;
    let fetches = idp.jwks_fetches();

    let good = idp.mint(&valid_claims(&idp));
    let by_enc_key = idp.mint_with_header(
        &enc,
        &json!({"alg": "RS256", "kid": enc}),
        &valid_claims(&idp),
    );

    assert_eq!(check_token(&server, &good).await, ALLOW_OWNED());
    assert_eq!(
        check_token(&server, &by_enc_key).await,
        (401, "key_unusable".into())
    );
    assert_eq!(
        idp.jwks_fetches(),
        fetches,
        "a skipped kid is known, so no refetch"
    );
}

#[allow(non_snake_case)]
fn ALLOW_OWNED() -> (u16, String) {
    (200, String::new())
}

/// BR-15: `alg: none` in every spelling, and a header without `alg`.
#[tokio::test]
async fn br15_alg_none_is_never_accepted() {
    let (idp, server) = setup().await;
    let fetches = idp.jwks_fetches();
    let claims = b64(valid_claims(&idp).to_string().as_bytes());
    let header = |alg: &str| b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
    let cases = [
        (format!("{}.{claims}.", header("none")), "token_malformed"),
        (format!("{}.{claims}.", header("None")), "token_malformed"),
        (format!("{}.{claims}.", header("NONE")), "token_malformed"),
        (
            format!("{}.{claims}.c2lnbmF0dXJl", header("none")),
            "algorithm_not_allowed",
        ),
        (format!("{}.{claims}", header("none")), "token_malformed"),
    ];
    for (token, reason) in cases {
        assert_eq!(
            check_token(&server, &token).await,
            (401, reason.into()),
            "{token}"
        );
    }
    let no_alg = idp.mint_with_header(
        &idp.signing_kid(),
        &json!({"typ": "JWT"}),
        &valid_claims(&idp),
    );
    assert_eq!(
        check_token(&server, &no_alg).await,
        (401, "token_malformed".into())
    );
    assert_eq!(
        idp.jwks_fetches(),
        fetches,
        "rejected before any key lookup"
    );
}

/// BR-16: HS256 tokens keyed with the provider's public key material.
#[tokio::test]
async fn br16_hmac_with_the_public_key_is_refused() {
    let (idp, server) = setup().await;
    let kid = idp.signing_kid();
    let jwk = idp.jwks()["keys"][0].clone();
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let claims = b64(valid_claims(&idp).to_string().as_bytes());
    let (jwk_text, modulus_b64) = (jwk.to_string(), STANDARD.encode(&modulus));
    let secrets: [&[u8]; 3] = [&modulus, jwk_text.as_bytes(), modulus_b64.as_bytes()];
    for (secret, header) in secrets.iter().zip([
        json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
        json!({"alg": "HS256", "kid": kid}),
        json!({"alg": "HS256"}),
    ]) {
        let input = format!("{}.{claims}", b64(header.to_string().as_bytes()));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        let token = format!("{input}.{}", b64(tag.as_ref()));
        assert_eq!(
            check_token(&server, &token).await,
            (401, "algorithm_not_allowed".into()),
            "{header}"
        );
    }
}

/// BR-19: one spelling per token: strict base64url, exact segment count.
#[tokio::test]
async fn br19_token_encoding_is_strict() {
    let idp = DevIdp::start().await.unwrap();
    let es = idp.rotate(KeyAlg::Es256);
    let server = TestServer::start(&config(&idp)).await;
    // ECDSA signatures are random: take one whose encoding uses `-` or `_`, so that
    // rewriting it in the standard alphabet really changes it.
    let token = std::iter::repeat_with(|| idp.mint(&valid_claims(&idp)))
        .find(|t| {
            t.rsplit('.')
                .next()
                .is_some_and(|sig| sig.contains(['-', '_']))
        })
        .unwrap();
    assert_eq!(idp.signing_kid(), es);
    let (head, sig) = token.rsplit_once('.').unwrap();
    let (h, p) = head.split_once('.').unwrap();
    let flip_low_bits = {
        // 64 bytes = 85 full chars + 1 char carrying 4 bits; change only the unused bits.
        let last = sig.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.find(last).unwrap();
        let other = alphabet.as_bytes()[index ^ 1] as char;
        format!("{}{other}", &sig[..sig.len() - 1])
    };
    let cases = [
        (format!("{token}a"), "token_malformed"),
        (format!("{head}.{flip_low_bits}"), "token_malformed"),
        (format!("{h}.{p}=.{sig}"), "token_malformed"),
        (
            format!("{head}.{}", sig.replace('-', "+").replace('_', "/")),
            "token_malformed",
        ),
        (format!("{token}."), "token_malformed"),
        (format!("{head}.{sig}.{p}.{p}.{p}"), "token_malformed"),
        // 84 characters decode to exactly 63 bytes: canonical, but not a P-256 signature.
        (format!("{head}.{}", &sig[..84]), "signature_invalid"),
    ];
    for (variant, reason) in cases {
        let (status, got) = check_token(&server, &variant).await;
        // Some variants change the alphabet so much that the credential is no longer a
        // b64token: those are 400 invalid_request, the rest 401 invalid_token.
        assert!(
            (status, got.as_str()) == (401, reason)
                || (status, got.as_str()) == (400, "credentials_malformed"),
            "{variant}: {status} {got}"
        );
    }
    let whitespace = server
        .check(get("/orders").header("authorization", &format!("Bearer   {token}   ")))
        .await;
    assert_eq!(outcome(&whitespace), ALLOW_OWNED());
    let inner_space = server
        .check(get("/orders").header("authorization", &format!("Bearer {head}. {sig}")))
        .await;
    assert_eq!(outcome(&inner_space), (400, "credentials_malformed".into()));
}

/// BR-21: RSA moduli and exponents with leading zeros; keys under 2048 bits.
#[tokio::test]
async fn br21_rsa_component_encodings() {
    let idp = DevIdp::start().await.unwrap();
    let padded = idp.add_key(KeyAlg::Rs256);
    let keys = idp.jwks()["keys"].as_array().unwrap().clone();
    let mut jwk = keys
        .iter()
        .find(|k| k["kid"] == padded.as_str())
        .unwrap()
        .clone();
    idp.remove_key(&padded);
    let mut n = vec![0u8];
    n.extend(URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap());
    jwk["n"] = json!(b64(&n));
    jwk["e"] = json!("AAEAAQ");
    idp.publish_extra_jwk(jwk);
    let server = TestServer::start(&config(&idp)).await;

    let token = idp.mint_with_header(
        &padded,
        &json!({"alg": "RS256", "kid": padded}),
        &valid_claims(&idp),
    );

    assert_eq!(check_token(&server, &token).await, ALLOW_OWNED());
}

/// BR-22: time claims against the real clock with the default 60 s skew.
#[tokio::test]
async fn br22_time_claims_and_skew() {
    let (idp, server) = setup().await;
    let t0 = support::now();
    let cases = [
        (json!({"iat": t0 + 5, "exp": t0 + 3600}), ALLOW),
        (
            json!({"iat": t0 + 30, "nbf": t0 + 30, "exp": t0 + 3600}),
            ALLOW,
        ),
        (
            json!({"iat": t0, "nbf": t0 + 120, "exp": t0 + 3600}),
            (401, "token_not_yet_valid"),
        ),
        (json!({"iat": t0 - 3600, "exp": t0 - 30}), ALLOW),
        (
            json!({"iat": t0 - 3600, "exp": t0 - 61}),
            (401, "token_expired"),
        ),
        (
            json!({"iat": t0 + 86400, "nbf": null, "exp": t0 + 90000}),
            (401, "token_not_yet_valid"),
        ),
        (json!({"exp": null}), (401, "expiration_missing")),
        (json!({"exp": "4102444800"}), (401, "claim_malformed")),
        (json!({"exp": (t0 + 3600) as f64 + 0.25}), ALLOW),
    ];
    for (changes, (status, reason)) in cases {
        let token = idp.mint(&with(valid_claims(&idp), changes.clone()));
        assert_eq!(
            check_token(&server, &token).await,
            (status, reason.into()),
            "{changes}"
        );
    }
}

/// BR-25: the scheme and the spaces around the token.
#[tokio::test]
async fn br25_authorization_header_forms() {
    let (idp, server) = setup().await;
    let t = idp.mint(&valid_claims(&idp));
    let cases = [
        (format!("Bearer {t}"), ALLOW),
        (format!("bearer {t}"), ALLOW),
        (format!("BEARER {t}"), ALLOW),
        (format!("Bearer   {t}"), ALLOW),
        (format!("Bearer\t{t}"), (400, "credentials_malformed")),
        (t.clone(), (401, "token_missing")),
        ("Basic dXNlcjpwYXNz".into(), (401, "token_missing")),
        ("Bearer".into(), (400, "credentials_malformed")),
        ("Bearer ".into(), (400, "credentials_malformed")),
        (format!("Bearer Bearer {t}"), (400, "credentials_malformed")),
        (
            format!("Bearer {t} trailing-junk"),
            (400, "credentials_malformed"),
        ),
    ];
    for (value, (status, reason)) in cases {
        let answer = server
            .check(get("/orders").header("authorization", &value))
            .await;
        assert_eq!(outcome(&answer), (status, reason.into()), "{value:.20}");
        if status == 401 {
            assert_eq!(
                answer.challenge().as_deref(),
                Some(r#"Bearer realm="orders""#)
            );
        }
        if status == 400 {
            assert_eq!(answer.challenge_error().as_deref(), Some("invalid_request"));
        }
    }
}

/// BR-35: a claim too large for a header is not forwarded; other headers still are.
#[tokio::test]
async fn br35_oversize_claim_headers_are_omitted() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp)
        .replace(
            "scope: x-auth-scopes }",
            "scope: x-auth-scopes, groups: x-auth-groups }",
        )
        .replace(
            "grpc: 127.0.0.1:0",
            "grpc: 127.0.0.1:0\n  max_token_bytes: 32768",
        );
    let server = TestServer::start(&yaml).await;
    let groups: Vec<String> = (0..300)
        .map(|i| format!("group-{i:04}-{}", "x".repeat(28)))
        .collect();
    let token = idp.mint(&with(valid_claims(&idp), json!({"groups": groups})));

    let answer = server.check(get("/orders").bearer(&token)).await;

    assert_eq!(answer.grpc_code(), 0);
    assert_eq!(answer.header("x-auth-sub").as_deref(), Some("user-123"));
    assert_eq!(answer.header("x-auth-groups"), None);
    assert_eq!(answer.removed(), ["x-auth-groups"]);
}

/// `typ` and `crit` headers (RFC 7515 §4.1.11, RFC 9068).
#[tokio::test]
async fn header_typ_and_crit() {
    let (idp, server) = setup().await;
    let kid = idp.signing_kid();
    let cases = [
        (json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"}), ALLOW),
        (
            json!({"alg": "RS256", "kid": kid, "typ": "application/at+jwt"}),
            ALLOW,
        ),
        (json!({"alg": "RS256", "kid": kid}), ALLOW),
        (
            json!({"alg": "RS256", "kid": kid, "typ": "JOSE+JSON"}),
            (401, "token_type_not_accepted"),
        ),
        (
            json!({"alg": "RS256", "kid": kid, "crit": ["exp"], "exp": 1}),
            (401, "crit_unsupported"),
        ),
        // The JWK says alg RS256, which pins the key: the header cannot pick PS256.
        (json!({"alg": "PS256", "kid": kid}), (401, "key_unusable")),
        (json!({"alg": "ES256", "kid": kid}), (401, "key_unusable")),
        (
            json!({"alg": "RS512", "kid": kid}),
            (401, "algorithm_not_allowed"),
        ),
    ];
    for (header, (status, reason)) in cases {
        let token = idp.mint_with_header(&kid, &header, &valid_claims(&idp));
        assert_eq!(
            check_token(&server, &token).await,
            (status, reason.into()),
            "{header}"
        );
    }
}

/// Keys of every supported type verify their own tokens.
#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify() {
    let idp = DevIdp::start().await.unwrap();
    let server =
        TestServer::start(&config(&idp).replace("refetch_cooldown: 30s", "refetch_cooldown: 0s"))
            .await;
    for alg in [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa] {
        idp.rotate(alg);
        let token = idp.mint(&valid_claims(&idp));
        assert_eq!(check_token(&server, &token).await, ALLOW_OWNED(), "{alg:?}");
    }
}

/// Providers that publish several spellings of their issuer list them explicitly; nothing
/// is normalised silently.
#[tokio::test]
async fn issuer_aliases_are_exact_and_explicit() {
    let idp = DevIdp::start().await.unwrap();
    let alias = format!("{}/", idp.issuer());
    let yaml = config(&idp).replace(
        "    refetch_cooldown: 30s\n",
        &format!("    issuer_aliases: [\"{alias}\"]\n"),
    );
    let server = TestServer::start(&yaml).await;
    let cases = [
        (json!(idp.issuer()), ALLOW),
        (json!(alias), ALLOW),
        (
            json!(format!("{}//", idp.issuer())),
            (401, "issuer_mismatch"),
        ),
        (json!(idp.issuer().to_uppercase()), (401, "issuer_mismatch")),
    ];
    for (iss, (status, reason)) in cases {
        let token = idp.mint(&with(valid_claims(&idp), json!({ "iss": iss })));
        assert_eq!(
            check_token(&server, &token).await,
            (status, reason.into()),
            "{iss}"
        );
    }
}
