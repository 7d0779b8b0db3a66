//! Key rotation under load: Checks stream continuously while the provider publishes a new
//! key, starts signing with it, and removes the old one. No valid token may be denied, and
//! no token signed by the removed key may be accepted once a refresh has dropped the key.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dev_idp::{DevIdp, KeyAlg};
use support::{TestServer, config, get, valid_claims};

const REFRESH: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Tally {
    checks: AtomicUsize,
    valid_denied: AtomicUsize,
    removed_accepted: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_gives_no_wrong_answer() {
    let idp = DevIdp::start().await.unwrap();
    let yaml = config(&idp).replace(
        "    refetch_cooldown: 30s\n",
        "    refresh: 200ms\n    min_refresh: 100ms\n    refetch_cooldown: 100ms\n",
    );
    let server = Arc::new(TestServer::start(&yaml).await);
    let old = idp.signing_kid();
    let old_token = idp.mint(&valid_claims(&idp));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Set once the old key has left the set for longer than one refresh interval.
    let removed_for_sure = Arc::new(AtomicBool::new(false));

    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (server, idp, tally, stop) =
                (server.clone(), idp.clone(), tally.clone(), stop.clone());
            let (old_token, removed_for_sure) = (old_token.clone(), removed_for_sure.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // Half the load is fresh tokens by the current signing key (cache
                    // misses), half the one token by the old key (cache hits).
                    let fresh = i % 2 == 0;
                    let token = if fresh {
                        idp.mint(&valid_claims(&idp))
                    } else {
                        old_token.clone()
                    };
                    let removed = removed_for_sure.load(Ordering::Relaxed);
                    let answer = server.check(get("/orders").bearer(&token)).await;
                    tally.checks.fetch_add(1, Ordering::Relaxed);
                    let allowed = answer.grpc_code() == 0;
                    if fresh && !allowed {
                        tally.valid_denied.fetch_add(1, Ordering::Relaxed);
                    }
                    if !fresh && removed && allowed {
                        tally.removed_accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    if !fresh && !removed && !allowed && answer.reason() != "unknown_kid" {
                        tally.valid_denied.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    let new = idp.add_key(KeyAlg::Es256);
    tokio::time::sleep(REFRESH * 3).await;
    idp.set_signing_key(&new);
    tokio::time::sleep(Duration::from_millis(400)).await;
    idp.remove_key(&old);
    let removed_at = Instant::now();
    tokio::time::sleep(REFRESH * 3).await;
    removed_for_sure.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let checks = tally.checks.load(Ordering::Relaxed);
    println!(
        "rotation: {checks} checks in {:?}, old key removed {:?} before the end",
        Duration::from_millis(300) + REFRESH * 6 + Duration::from_millis(900),
        removed_at.elapsed()
    );
    assert!(checks > 100, "only {checks} checks ran");
    assert_eq!(
        tally.valid_denied.load(Ordering::Relaxed),
        0,
        "valid tokens denied"
    );
    assert_eq!(
        tally.removed_accepted.load(Ordering::Relaxed),
        0,
        "removed key accepted"
    );
}
