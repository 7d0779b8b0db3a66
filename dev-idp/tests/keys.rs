//! Discovery, the JWKS, minting and key rotation, checked over real HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use dev_idp::{DevIdp, KeyAlg, Options};
use serde_json::json;

use support::{decode, get_json, verify, verify_with_jwk};

#[tokio::test]
async fn discovery_document_points_at_this_idp() {
    let idp = DevIdp::start().await.unwrap();

    let doc = get_json(&idp.discovery_url()).await;

    let issuer = format!("http://{}", idp.addr());
    assert_eq!(idp.issuer(), issuer);
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["jwks_uri"], idp.jwks_url());
    assert_eq!(doc["jwks_uri"], format!("{issuer}/jwks"));
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        doc["scopes_supported"],
        json!(["orders.read", "orders.write"])
    );
    assert_eq!(idp.discovery_fetches(), 1);
}

#[tokio::test]
async fn discovery_overrides_change_only_the_document() {
    let idp = DevIdp::start().await.unwrap();
    idp.set_discovery_issuer(Some("https://elsewhere.example".into()));
    idp.set_jwks_uri(Some("http://127.0.0.1:1/keys".into()));

    let doc = get_json(&idp.discovery_url()).await;

    assert_eq!(doc["issuer"], "https://elsewhere.example");
    assert_eq!(doc["jwks_uri"], "http://127.0.0.1:1/keys");
    assert_eq!(idp.claims()["iss"], idp.issuer());
}

#[tokio::test]
async fn minted_tokens_verify_with_the_published_jwk_for_every_alg() {
    for alg in [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa] {
        let options = Options {
            first_key: alg,
            ..Options::default()
        };
        let idp = DevIdp::start_with(options).await.unwrap();

        let token = idp.mint(&idp.claims());
        let jwks = get_json(&idp.jwks_url()).await;

        let (header, _) = decode(&token);
        assert_eq!(
            header,
            json!({ "alg": alg.as_str(), "typ": "JWT", "kid": "k1" })
        );
        let claims = verify(&jwks, &token);
        assert_eq!(claims["iss"], idp.issuer());
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
        assert_eq!(jwks["keys"][0]["use"], "sig");
    }
}

#[tokio::test]
async fn rsa_modulus_is_unsigned_without_leading_zero() {
    let idp = DevIdp::start().await.unwrap();

    let jwks = get_json(&idp.jwks_url()).await;

    let n = support::b64(jwks["keys"][0]["n"].as_str().unwrap());
    assert_eq!(n.len(), 256);
    assert_ne!(n[0], 0);
    assert_eq!(jwks["keys"][0]["e"], "AQAB");
}

#[tokio::test]
async fn rotation_signs_with_the_new_key_and_keeps_the_old_one_published() {
    let idp = DevIdp::start().await.unwrap();
    let before = idp.mint(&idp.claims());

    let kid = idp.rotate(KeyAlg::Es256);
    let after = idp.mint(&idp.claims());
    let jwks = get_json(&idp.jwks_url()).await;

    assert_eq!(kid, "k2");
    assert_eq!(idp.signing_kid(), "k2");
    assert_eq!(decode(&after).0["alg"], "ES256");
    verify(&jwks, &before);
    verify(&jwks, &after);
}

#[tokio::test]
async fn added_key_is_published_without_signing() {
    let idp = DevIdp::start().await.unwrap();

    let kid = idp.add_key(KeyAlg::EdDsa);
    let jwks = get_json(&idp.jwks_url()).await;

    assert_eq!(jwks["keys"][1]["kid"], kid.as_str());
    assert_eq!(idp.signing_kid(), "k1");
    idp.set_signing_key(&kid);
    verify(&jwks, &idp.mint(&idp.claims()));
}

#[tokio::test]
async fn removed_key_is_unpublished_but_still_signs() {
    let idp = DevIdp::start().await.unwrap();
    let old_jwk = get_json(&idp.jwks_url()).await["keys"][0].clone();
    idp.rotate(KeyAlg::Rs256);

    idp.remove_key("k1");
    let jwks = get_json(&idp.jwks_url()).await;

    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], "k2");
    let signature = idp.sign("k1", b"payload");
    assert_eq!(verify_with_jwk(&old_jwk, b"payload", &signature), Ok(()));
    assert!(verify_with_jwk(&jwks["keys"][0], b"payload", &signature).is_err());
}

#[tokio::test]
async fn mint_with_header_keeps_the_header_and_signs_with_the_keys_own_alg() {
    let idp = DevIdp::start().await.unwrap();
    let header = json!({ "alg": "HS256", "kid": "k1", "crit": ["exp"] });

    let token = idp.mint_with_header("k1", &header, &json!({ "sub": "x" }));
    let jwks = get_json(&idp.jwks_url()).await;

    assert_eq!(decode(&token).0, header);
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = support::b64(signature);
    assert_eq!(
        verify_with_jwk(&jwks["keys"][0], signing_input.as_bytes(), &signature),
        Ok(())
    );
}

#[tokio::test]
async fn extra_jwks_follow_the_generated_keys() {
    let idp = DevIdp::start().await.unwrap();
    let extra = json!({ "kty": "RSA", "use": "enc", "kid": "enc-1", "n": "AQAB", "e": "AQAB" });

    idp.publish_extra_jwk(extra.clone());
    let jwks = get_json(&idp.jwks_url()).await;

    assert_eq!(jwks["keys"][1], extra);
    assert_eq!(jwks, idp.jwks());
}

#[tokio::test]
async fn cache_control_is_sent_only_when_set() {
    let idp = DevIdp::start().await.unwrap();
    let plain = reqwest::get(idp.jwks_url()).await.unwrap();

    idp.set_cache_control(Some("max-age=60".into()));
    let cached = reqwest::get(idp.jwks_url()).await.unwrap();

    assert_eq!(plain.headers().get("cache-control"), None);
    assert_eq!(cached.headers()["cache-control"], "max-age=60");
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_rotate_and_retire_on_a_multi_thread_runtime() {
    let idp = DevIdp::start().await.unwrap();
    let http = reqwest::Client::new();
    let admin = |path: &str| http.post(format!("{}/admin/{path}", idp.issuer())).send();

    let rotated: serde_json::Value = admin("rotate?alg=EdDSA")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let retired = admin("retire?kid=k1").await.unwrap().status().as_u16();
    let unknown = admin("retire?kid=k1").await.unwrap().status().as_u16();
    let bad_alg = admin("rotate?alg=HS256").await.unwrap().status().as_u16();

    assert_eq!(rotated["kid"], "k2");
    assert_eq!(idp.signing_kid(), "k2");
    assert_eq!((retired, unknown, bad_alg), (200, 404, 400));
    let jwks = get_json(&idp.jwks_url()).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    verify(&jwks, &idp.mint(&idp.claims()));
}
