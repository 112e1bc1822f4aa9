//! Memory per cached token. Run:
//! `cargo bench -p poolgate-authorizer --bench cache_memory`
//! (`POOLGATE_CACHE_TOKENS=N` to change the default 100,000; `POOLGATE_KEEP_CLAIMS=all` to keep
//! every claim instead of the few a typical policy reads, as the proxy does).
//!
//! Fills the verified-token cache with N distinct Cognito-shaped access tokens (RS256, about
//! 1 KiB, two groups, two scopes) through `Authorizer::verify_now`, and reports per entry: the
//! heap bytes still allocated afterwards (counted by `allocation-counter` on this thread; moka's
//! sync cache does its maintenance on the caller's thread) and the growth of the process's
//! `VmRSS`, which adds the allocator's own overhead. It also splits the heap bytes into the
//! identity, the key and the rest (moka's entry, its deques and timer wheel, our `Entry`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use poolgate_authorizer::testutil::TestIssuer;
use poolgate_authorizer::{Authorizer, CacheConfig, KeepClaims, Requirement};

/// Resident set size of this process, in KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let n: usize = std::env::var("POOLGATE_CACHE_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = rt.block_on(TestIssuer::start()).unwrap();
    // What the shop example reads (`poolgate check` shows the same set): the proxy keeps these.
    let keep_claims = match std::env::var("POOLGATE_KEEP_CLAIMS").as_deref() {
        Ok("all") => KeepClaims::All,
        _ => KeepClaims::Only(Arc::new(
            ["cognito:groups", "email", "sub", "username"]
                .into_iter()
                .map(String::from)
                .collect(),
        )),
    };
    eprintln!("claims kept: {keep_claims:?}");
    let cache = CacheConfig {
        capacity: (n as u64).max(CacheConfig::default().capacity),
        keep_claims,
        ..CacheConfig::default()
    };
    let auth = Authorizer::new(vec![pool.config("shop")], cache).unwrap();
    rt.block_on(async {
        auth.start();
        assert!(auth.wait_ready(Duration::from_secs(5)).await);
    });
    let req = Requirement::access("shop");

    // Minted with the hand-made signer on the pre-parsed key, under the header `mint_access`
    // writes: jsonwebtoken's signer re-reads the private key per token, which is about twice as
    // slow (timed below on a sample).
    let key = pool.access_key();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": key.kid});
    let mint = |i: usize| {
        let claims = pool.access_claims(
            &format!("user-{i:06}"),
            &["admins", "readers"],
            &["orders/read", "openid"],
        );
        key.sign_token(&header, &claims.into_value())
    };
    let sample = 200;
    let started = Instant::now();
    for i in 0..sample {
        std::hint::black_box(pool.mint_access(&format!("user-{i:06}"), &["admins"], &["openid"]));
    }
    let jsonwebtoken_mint = started.elapsed() / sample;
    let started = Instant::now();
    let tokens: Vec<String> = (0..n).map(mint).collect();
    eprintln!(
        "minting: {:.0?} per token by hand, {jsonwebtoken_mint:.0?} through jsonwebtoken::encode",
        started.elapsed() / n.max(1) as u32
    );
    let mean_len = tokens.iter().map(String::len).sum::<usize>() / n.max(1);
    eprintln!("{n} tokens of {mean_len} bytes on average");

    let rss_before = vm_rss_kib();
    let filled = allocation_counter::measure(|| {
        for token in &tokens {
            auth.verify_now(token, &req).unwrap();
        }
        // Runs moka's pending maintenance, which admits the buffered writes.
        assert_eq!(auth.cache_len(), n as u64);
    });
    let rss_after = vm_rss_kib();

    // The parts of one entry: the identity (an `Arc<Identity>`, deep) and the token key.
    let sample = auth.verify_now(&tokens[0], &req).unwrap();
    let mut copy = None;
    let identity = allocation_counter::measure(|| copy = Some(Arc::new((*sample).clone())));
    drop(copy);

    let per_entry = filled.bytes_current as f64 / n as f64;
    let allocs = filled.count_current as f64 / n as f64;
    let rss = (rss_after.saturating_sub(rss_before) * 1024) as f64 / n as f64;
    let identity_bytes = identity.bytes_current as f64;
    let key_bytes = auth_cache_key_bytes(mean_len);
    println!("| measure | per entry | for 100,000 entries |");
    println!("|---|---|---|");
    let row = |name: &str, bytes: f64| {
        println!(
            "| {name} | {bytes:.0} B | {:.0} MiB |",
            bytes * 100_000.0 / (1024.0 * 1024.0)
        );
    };
    row("heap bytes (allocation-counter)", per_entry);
    row("VmRSS growth", rss);
    row("  identity (Arc<Identity>, deep)", identity_bytes);
    row("  key", key_bytes);
    row(
        "  moka entry and the rest",
        per_entry - identity_bytes - key_bytes,
    );
    println!(
        "live allocations per entry: {allocs:.1} (identity: {})",
        identity.count_current
    );
    drop(pool);
}

/// Heap bytes of one cache key for a token of `len` bytes (see `authorizer/src/cache.rs`).
fn auth_cache_key_bytes(len: usize) -> f64 {
    // moka keeps each key in an `Arc`: two counters and the 32-byte digest.
    let _ = len;
    48.0
}
