//! No token, signature or key material in any log line: every deny path of the suite's
//! token cases runs with logging at `trace`, and the captured output is searched for the
//! secrets. A binary of its own, since it installs a subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use dev_idp::{DevIdp, KeyAlg};
use serde_json::json;
use support::{TestServer, config, get, valid_claims, with};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_log_line_carries_a_token_or_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let idp = DevIdp::start().await.unwrap();
    let server = TestServer::start(&config(&idp)).await;
    let now = support::now();
    let kid = idp.signing_kid();
    let unpublished = idp.add_key(KeyAlg::Es256);
    idp.remove_key(&unpublished);
    let claims = valid_claims(&idp);
    let tokens = vec![
        idp.mint(&claims),
        idp.mint(&with(claims.clone(), json!({"exp": now - 3600}))),
        idp.mint(&with(claims.clone(), json!({"aud": "api://other"}))),
        idp.mint(&with(claims.clone(), json!({"scope": "nothing"}))),
        idp.mint(&with(
            claims.clone(),
            json!({"iss": "https://evil.example"}),
        )),
        idp.mint_with_header(&kid, &json!({"alg": "RS256", "kid": "nope"}), &claims),
        idp.mint_with_header(&unpublished, &json!({"alg": "ES256", "kid": kid}), &claims),
        idp.mint_with_header(&kid, &json!({"alg": "HS256", "kid": kid}), &claims),
        idp.mint_with_header(&kid, &json!({"alg": "RS256", "crit": ["x"]}), &claims),
        format!("{}x", idp.mint(&claims)),
    ];

    for token in &tokens {
        server.check(get("/orders").bearer(token)).await;
        server
            .check(get("/orders").header("authorization", &format!("Bearer\t{token}")))
            .await;
        server
            .check(get("/orders").bearer(token).bearer(token))
            .await;
        server
            .check(get("/orders").header("cookie", &format!("session={token}")))
            .await;
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("request denied"),
        "the deny paths ran and logged"
    );
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        assert!(!logs.contains(signature), "a signature reached the logs");
        assert!(!logs.contains(payload), "a token payload reached the logs");
    }
    let jwks = idp.jwks().to_string();
    for key in idp.jwks()["keys"].as_array().unwrap() {
        for part in ["n", "x", "y"] {
            if let Some(value) = key[part].as_str() {
                assert!(
                    !logs.contains(value),
                    "key material reached the logs: {jwks:.40}"
                );
            }
        }
    }
}
