//! The request lists of each scenario, minted before the load starts (minting is not measured).

use std::sync::Arc;

use http::Method;
use poolgate_authorizer::Algorithm;
use poolgate_authorizer::testutil::{TestIssuer, TestKey};

use crate::cli::{Scenario, Sizes};
use crate::tokens::{Minter, par_map, tamper};
use crate::workload::Req;

/// Every list a run needs, for the scenarios it runs.
pub struct TokenSets {
    /// 1,000 users' valid tokens: `hot`, and the references (backend, pass-through, peers).
    pub hot: Vec<Req>,
    pub cold: Vec<Req>,
    pub mixed: Vec<Req>,
    /// The same users' tokens under the key published mid-run.
    pub rotated: Vec<Req>,
    pub rotation_key: Option<Arc<TestKey>>,
    pub routes: Vec<Req>,
    pub cache: Vec<Req>,
    pub cache_key: Option<Arc<TestKey>>,
}

fn article(i: usize) -> String {
    format!("/articles/{}", i % 100)
}

/// Mints what `scenarios` need on every core.
pub fn mint(
    issuer: &TestIssuer,
    minter: &Minter,
    scenarios: &[Scenario],
    sizes: &Sizes,
) -> Result<TokenSets, String> {
    let has = |s: Scenario| scenarios.contains(&s);
    let hot_tokens = par_map(sizes.hot_tokens, |i| minter.access(i));
    let hot: Vec<Req> = hot_tokens
        .iter()
        .enumerate()
        .map(|(i, t)| Req::get(&article(i), Some(t), 200))
        .collect();

    let cold = if has(Scenario::Cold) {
        par_map(sizes.cold_tokens, |i| {
            Req::get(&article(i), Some(&minter.access(i)), 200)
        })
    } else {
        Vec::new()
    };

    let mixed = if has(Scenario::Mixed) {
        mixed(issuer, minter, &hot_tokens)?
    } else {
        Vec::new()
    };

    let (rotated, rotation_key) = if has(Scenario::Rotation) {
        let key = Arc::new(TestKey::rsa("access-rotated").map_err(|e| e.to_string())?);
        let m = Minter::with_test_key(&minter.issuer, &minter.client_id, key.clone());
        let reqs = par_map(sizes.hot_tokens, |i| {
            Req::get(&article(i), Some(&m.access(i)), 200)
        });
        (reqs, Some(key))
    } else {
        (Vec::new(), None)
    };

    let routes = if has(Scenario::Routes) {
        // Spread over all routes: the matcher cannot keep answering from one hot entry.
        (0..sizes.hot_tokens.max(1) * 10)
            .map(|k| {
                let i = k % sizes.hot_tokens.max(1);
                let t = hot_tokens.get(i).map(String::as_str);
                let route = (k * 7919) % sizes.routes.max(1);
                Req::get(&format!("/svc/s{route}/item"), t, 200)
            })
            .collect()
    } else {
        Vec::new()
    };

    let (cache, cache_key) = if has(Scenario::Cache) {
        // ES256 signs ~50× faster than RS256, so 100,000 tokens mint in seconds; the cache keeps
        // a digest of the token and the verified identity, whatever the algorithm.
        let key = Arc::new(
            TestKey::generate("cache-es256", Algorithm::ES256).map_err(|e| e.to_string())?,
        );
        let m = Minter::with_test_key(&minter.issuer, &minter.client_id, key.clone());
        let reqs = par_map(sizes.cache_tokens, |i| {
            Req::get(&article(i), Some(&m.access(i)), 200)
        });
        (reqs, Some(key))
    } else {
        (Vec::new(), None)
    };

    Ok(TokenSets {
        hot,
        cold,
        mixed,
        rotated,
        rotation_key,
        routes,
        cache,
        cache_key,
    })
}

/// 70 % allowed, 15 % forbidden, 10 % invalid (bad signature, expired), 5 % unknown kid, in
/// a fixed interleaving of 20 so every window of the run has the same mix.
fn mixed(issuer: &TestIssuer, minter: &Minter, hot: &[String]) -> Result<Vec<Req>, String> {
    let stranger = Arc::new(TestKey::rsa("never-published").map_err(|e| e.to_string())?);
    let unknown = Minter::with_test_key(&issuer.issuer, &issuer.client_id, stranger);
    let n = hot.len().max(20);
    let expired = par_map(n / 20 + 1, |i| minter.expired(i));
    let unknown_kid = par_map(n / 20 + 1, |i| unknown.access(i));
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let t = hot
            .get(k % hot.len().max(1))
            .map(String::as_str)
            .unwrap_or_default();
        let j = k / 20;
        let req = match k % 20 {
            // 14 of 20: allowed.
            0..=13 => Req::get(&article(k), Some(t), 200),
            // 3 of 20: forbidden — the admin-only route, and DELETE, which no reader may do.
            14 | 15 => Req::get(
                &format!("/admin/{}", k % 10),
                Some(reader_token(hot, k)),
                403,
            ),
            16 => Req::new(Method::DELETE, &article(k), Some(reader_token(hot, k)), 403),
            // 2 of 20: invalid — a flipped signature, an expired token.
            17 => Req::get(&article(k), Some(&tamper(t)), 401),
            18 => Req::get(&article(k), expired.get(j).map(String::as_str), 401),
            // 1 of 20: signed by a key the issuer never published.
            _ => Req::get(&article(k), unknown_kid.get(j).map(String::as_str), 401),
        };
        out.push(req);
    }
    Ok(out)
}

/// A token of a user who is only in `readers` (see `tokens::groups_of`).
fn reader_token(hot: &[String], k: usize) -> &str {
    let i = (k / 10) * 10 + (k % 6);
    hot.get(i % hot.len().max(1))
        .map(String::as_str)
        .unwrap_or_default()
}
