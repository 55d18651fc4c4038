//! The Redis-backed limiter against a real Redis: two limiters (two edge
//! replicas) share one budget per bucket, exactly, under concurrency.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use hood_domain::gcra::{Decision, Quota};
use hood_edge::limit::{Limiter, RedisLimiter};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_one_budget() {
    let Some(url) = hood_testkit::redis_url("redis limiter") else {
        return;
    };
    let prefix = format!("hood-test:{}", uuid::Uuid::new_v4().simple());
    let a = Arc::new(RedisLimiter::connect(&url, &prefix).await.unwrap());
    let b = Arc::new(RedisLimiter::connect(&url, &prefix).await.unwrap());
    assert_eq!(a.kind(), "redis");
    // 1,000 CU per minute, burst 1,000: at one instant exactly 100 calls of
    // 10 CU pass, however they are spread over the replicas.
    let quota = Quota::per_minute(1_000);
    let now = 1_900_000_000_000i64;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                limiter
                    .acquire("key:chain", 10, &quota, now)
                    .await
                    .unwrap()
                    .is_allowed()
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        if t.await.unwrap() {
            admitted += 1;
        }
    }
    // Exactly the budget; a decision Redis could not take in time (a loaded
    // machine) falls back to the replica's own limiter and may add one.
    let fallbacks = a.fallbacks() + b.fallbacks();
    assert!(
        (100..=100 + fallbacks).contains(&admitted),
        "{admitted} admitted with {fallbacks} local fallbacks: one shared budget"
    );
    assert!(fallbacks < 10, "Redis answered: {fallbacks} fallbacks");
    // Another bucket is independent; the refill follows the rate.
    assert!(b
        .acquire("key:other", 1_000, &quota, now)
        .await
        .unwrap()
        .is_allowed());
    assert!(matches!(
        a.acquire("key:chain", 10, &quota, now).await.unwrap(),
        Decision::Deny { retry_after_ms } if retry_after_ms > 0 && retry_after_ms <= 600
    ));
    assert!(a
        .acquire("key:chain", 10, &quota, now + 600)
        .await
        .unwrap()
        .is_allowed());
    assert_eq!(
        a.acquire("key:chain", 5_000, &quota, now).await.unwrap(),
        Decision::TooLarge
    );
    // A refund on one replica is budget for the other: a bucket emptied
    // at `now` admits 20 CU more only once 20 CU come back.
    assert!(a
        .acquire("key:refund", 1_000, &quota, now)
        .await
        .unwrap()
        .is_allowed());
    assert!(!b
        .acquire("key:refund", 20, &quota, now)
        .await
        .unwrap()
        .is_allowed());
    a.refund("key:refund", 20, &quota, now).await;
    assert!(b
        .acquire("key:refund", 20, &quota, now)
        .await
        .unwrap()
        .is_allowed());
    assert!(!a
        .acquire("key:refund", 10, &quota, now)
        .await
        .unwrap()
        .is_allowed());

    // Clean up this test's keys.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3);
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = RedisLimiter::connect(&format!("redis://:s3cret@127.0.0.1:{port}"), "p")
        .await
        .err()
        .expect("nothing listens there");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
