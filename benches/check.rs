//! Criterion benches of the Check path, in process.
//!
//! - `check_cache_hit`: a cached RS256 token through `CheckService::decide`, from the
//!   `CheckRequest` to the built `CheckResponse`; `authorizer_cache_hit` is the same
//!   without building the response; `token_digest` is the cache key alone (SHA-256 of
//!   provider and token).
//! - `check_cold_{rs256,es256,eddsa}`: a token that is not cached (the cache is off), so
//!   each call decodes, selects the key, verifies the signature and the claims.
//! - `raw_verify_{rs256,es256,eddsa}`: the crypto backend alone (aws-lc-rs) on the same
//!   token's signing input and signature, with the key given as the JWK's raw components
//!   as jsonwebtoken passes them (so aws-lc-rs builds the key on each call); the
//!   `_parsed` variants verify with a key parsed once, the floor a pre-parsed key would
//!   reach.
//!
//! Cold over raw is the cost of everything around the signature. Run with
//! `cargo bench --bench check`; `-- --test` runs each bench once (the CI smoke mode);
//! `-- --callgrind NAME [ITERATIONS]` runs one bench's routine in a loop for a profiler.

use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use dev_idp::{DevIdp, KeyAlg};
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use serde_json::Value;
use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;
use tollgate::authorizer::Authorizer;
use tollgate::config::Config;
use tollgate::jwks::{KeyStore, fetch};
use tollgate::policy::ProviderName;
use tollgate::request::HttpRequestView;
use tollgate::service::CheckService;
use tollgate::token_cache::TokenCache;

mod common;

/// The Check service and the authorizer under it.
struct Subject {
    service: CheckService,
    authorizer: Arc<Authorizer>,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime starts");
    let _entered = runtime.enter();
    let stop = CancellationToken::new();

    let idp = runtime
        .block_on(DevIdp::start())
        .expect("dev-idp starts on loopback");
    let kids = common::Kids::publish(&idp);
    let cached = subject(&runtime, &idp, 64 * 1024 * 1024, &stop);
    let uncached = subject(&runtime, &idp, 0, &stop);
    let tokens = [
        (
            "rs256",
            common::mint(&idp, &kids.rs256, KeyAlg::Rs256),
            &kids.rs256,
        ),
        (
            "es256",
            common::mint(&idp, &kids.es256, KeyAlg::Es256),
            &kids.es256,
        ),
        (
            "eddsa",
            common::mint(&idp, &kids.eddsa, KeyAlg::EdDsa),
            &kids.eddsa,
        ),
    ];

    let hit = common::check_request(&tokens[0].1);
    assert_allowed(runtime.handle(), &cached.service, &hit);
    let handle = runtime.handle();
    let mut benches: Vec<(String, Routine<'_>)> = vec![
        (
            "check_cache_hit".into(),
            Box::new(|| {
                black_box(run(handle, cached.service.decide(black_box(&hit))));
            }),
        ),
        (
            "authorizer_cache_hit".into(),
            Box::new(|| {
                let view = HttpRequestView::new(black_box(&hit));
                let check = cached
                    .authorizer
                    .check(view, Some(common::POLICY), tollgate::now());
                black_box(run(handle, check));
            }),
        ),
    ];
    let provider = ProviderName::new("idp");
    let token = tokens[0].1.as_str();
    benches.push((
        "token_digest".into(),
        Box::new(move || {
            black_box(TokenCache::digest(black_box(&provider), black_box(token)));
        }),
    ));
    for (alg, token, kid) in &tokens {
        let request = common::check_request(token);
        assert_allowed(handle, &uncached.service, &request);
        let service = &uncached.service;
        benches.push((
            format!("check_cold_{alg}"),
            Box::new(move || {
                black_box(run(handle, service.decide(black_box(&request))));
            }),
        ));

        let jwk = jwk(&idp, kid);
        let (signing_input, signature) = split(token);
        let (verify, parsed) = raw_verifiers(alg, &jwk);
        assert!(verify(signing_input, &signature), "raw {alg} verifies");
        assert!(parsed(signing_input, &signature), "parsed {alg} verifies");
        let signature = Arc::new(signature);
        let sig = signature.clone();
        benches.push((
            format!("raw_verify_{alg}"),
            Box::new(move || {
                black_box(verify(black_box(signing_input), black_box(&sig)));
            }),
        ));
        benches.push((
            format!("raw_verify_{alg}_parsed"),
            Box::new(move || {
                black_box(parsed(black_box(signing_input), black_box(&signature)));
            }),
        ));
    }

    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--callgrind") {
        let name = args.get(at + 1).expect("--callgrind NAME [ITERATIONS]");
        let iterations = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        let (_, routine) = benches
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no bench named {name}"));
        callgrind_loop(routine, iterations);
    } else {
        let mut c = Criterion::default()
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1))
            .configure_from_args();
        for (name, routine) in &mut benches {
            c.bench_function(name, |b| b.iter(&mut *routine));
        }
        c.final_summary();
    }
    stop.cancel();
}

/// One measured operation.
type Routine<'a> = Box<dyn FnMut() + 'a>;

/// Runs a bench's routine `iterations` times in a function of its own, so that
/// `valgrind --tool=callgrind --toggle-collect='*callgrind_loop*'` counts only the
/// routine, not the set-up (benches/README.md).
#[inline(never)]
fn callgrind_loop(routine: &mut Routine<'_>, iterations: u64) {
    for _ in 0..iterations {
        routine();
    }
}

/// A Check service over its own key store, with keys loaded.
fn subject(runtime: &Runtime, idp: &DevIdp, cache_bytes: u64, stop: &CancellationToken) -> Subject {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let yaml = common::tollgate_yaml(idp, loopback, loopback, cache_bytes);
    let config = Config::parse(&yaml, Path::new("bench.yaml")).expect("bench config is valid");
    let keys = Arc::new(KeyStore::new(config.providers.iter().cloned()));
    let client = fetch::client().expect("the key-fetching client builds");
    keys.spawn_refresh(&client, stop);
    runtime.block_on(async {
        for _ in 0..500 {
            if keys.ready() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("keys did not load within 5 s");
    });
    let authorizer = Arc::new(Authorizer::new(Arc::new(config), keys));
    let service = CheckService::new(Arc::new(ArcSwap::new(authorizer.clone())));
    Subject {
        service,
        authorizer,
    }
}

/// Runs a future that is normally ready at once (the Check path awaits only a key
/// refetch, which these benches never cause) without a runtime's scheduling overhead;
/// one that is pending is finished on the runtime.
fn run<F: Future>(handle: &Handle, future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => handle.block_on(future),
    }
}

fn assert_allowed(handle: &Handle, service: &CheckService, request: &CheckRequest) {
    let response = run(handle, service.decide(request));
    let code = response.status.map(|s| s.code);
    assert_eq!(
        code,
        Some(0),
        "bench token is allowed: {:?}",
        response.dynamic_metadata
    );
}

/// The published JWK with `kid`.
fn jwk(idp: &DevIdp, kid: &str) -> Value {
    let jwks = idp.jwks();
    let keys = jwks["keys"].as_array().expect("a JWKS has keys");
    keys.iter()
        .find(|k| k["kid"] == kid)
        .cloned()
        .expect("the key is published")
}

/// A token's signing input and its decoded signature.
fn split(token: &str) -> (&[u8], Vec<u8>) {
    let (input, signature) = token.rsplit_once('.').expect("a JWS has three parts");
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url signature");
    (input.as_bytes(), signature)
}

fn member(jwk: &Value, name: &str) -> Vec<u8> {
    let text = jwk[name].as_str().expect("the JWK member is a string");
    URL_SAFE_NO_PAD.decode(text).expect("base64url JWK member")
}

type Verify = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// Verification by aws-lc-rs alone: building the key from the JWK's components on each
/// call (as jsonwebtoken does), and with a key parsed once.
fn raw_verifiers(alg: &str, jwk: &Value) -> (Verify, Verify) {
    match alg {
        "rs256" => {
            let (n, e) = (member(jwk, "n"), member(jwk, "e"));
            let parsed = RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .expect("the RSA key parses");
            let each_call: Verify = Box::new(move |input, signature| {
                RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(&RSA_PKCS1_2048_8192_SHA256, input, signature)
                    .is_ok()
            });
            (each_call, parsed_verifier(parsed))
        }
        "es256" => {
            let mut point = vec![4];
            point.extend(member(jwk, "x"));
            point.extend(member(jwk, "y"));
            let parsed =
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).expect("the EC key parses");
            let each_call: Verify = Box::new(move |input, signature| {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                    .verify(input, signature)
                    .is_ok()
            });
            (each_call, parsed_verifier(parsed))
        }
        _ => {
            let x = member(jwk, "x");
            let parsed = ParsedPublicKey::new(&ED25519, &x).expect("the Ed25519 key parses");
            let each_call: Verify = Box::new(move |input, signature| {
                UnparsedPublicKey::new(&ED25519, &x)
                    .verify(input, signature)
                    .is_ok()
            });
            (each_call, parsed_verifier(parsed))
        }
    }
}

fn parsed_verifier(key: ParsedPublicKey) -> Verify {
    Box::new(move |input, signature| key.verify_sig(input, signature).is_ok())
}
