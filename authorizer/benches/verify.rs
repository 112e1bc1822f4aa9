//! Micro-benchmarks of the token path. Run:
//! `cargo bench -p poolgate-authorizer --bench verify -- --warm-up-time 1 --measurement-time 3`
//! and compare `uncached_rs256` with `openssl speed -seconds 3 rsa2048` (verify/s).
//!
//! Each benchmark runs twice: `wall/…` in wall-clock time, and `cpu/…` in the thread's CPU time,
//! which is what `openssl speed` divides by unless given `-elapsed`; on a shared, loaded machine
//! the CPU-time figures are the fair comparison.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Duration;

use base64::Engine;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use poolgate_authorizer::testutil::{Claims, TestIssuer, TestKey, jwks_of, unix_now};
use poolgate_authorizer::verify::verify;
use poolgate_authorizer::{
    Algorithm, Authorizer, CacheConfig, IssuerConfig, IssuerRules, KeySet, Requirement,
    TokenUseRequirement,
};

/// The calling thread's CPU time.
struct CpuTime;

static WALL: WallTime = WallTime;

impl Measurement for CpuTime {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;
    fn start(&self) -> Self::Intermediate {
        cpu_time::ThreadTime::now()
    }
    fn end(&self, i: Self::Intermediate) -> Self::Value {
        i.elapsed()
    }
    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        *v1 + *v2
    }
    fn zero(&self) -> Self::Value {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

struct Fixture {
    _rt: tokio::runtime::Runtime,
    _pool: TestIssuer,
    cached: Authorizer,
    uncached: Authorizer,
    token: String,
    req: Requirement,
    keys: KeySet,
    rules: IssuerRules,
    core_token: String,
    now: u64,
    jwks_doc: String,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = rt.block_on(TestIssuer::start()).unwrap();
    let cfg = pool.config("shop");
    let cached = Authorizer::new(vec![cfg.clone()], CacheConfig::default()).unwrap();
    let no_cache = CacheConfig {
        capacity: 0,
        ..CacheConfig::default()
    };
    let uncached = Authorizer::new(vec![cfg], no_cache).unwrap();
    rt.block_on(async {
        cached.start();
        uncached.start();
        assert!(cached.wait_ready(Duration::from_secs(5)).await);
        assert!(uncached.wait_ready(Duration::from_secs(5)).await);
    });
    let token = pool.mint_access("alice", &["admins", "readers"], &["orders/read", "openid"]);
    let req = Requirement::access("shop");
    assert!(cached.verify_now(&token, &req).is_ok());

    let key = TestKey::rsa("k1").unwrap();
    let second = TestKey::rsa("k2").unwrap();
    let keys =
        KeySet::from_jwks(jwks_of([&key]).to_string().as_bytes(), &[Algorithm::RS256]).unwrap();
    let mut core_cfg = IssuerConfig::cognito("shop", "us-east-1", "us-east-1_Bench", &["c1"]);
    core_cfg.token_use = TokenUseRequirement::Any;
    let rules = IssuerRules::from_config(&core_cfg);
    let now = unix_now();
    let claims = Claims::access(
        &rules.iss,
        "c1",
        "alice",
        &["admins", "readers"],
        &["orders/read", "openid"],
        now,
    );
    let core_token = key.sign_claims(&claims.into_value());
    assert!(verify(&core_token, &rules, &keys, now).is_ok());
    Fixture {
        _rt: rt,
        _pool: pool,
        cached,
        uncached,
        token,
        req,
        keys,
        rules,
        core_token,
        now,
        jwks_doc: jwks_of([&key, &second]).to_string(),
    }
}

fn run<M: Measurement>(c: &mut Criterion<M>, prefix: &str) {
    let f = fixture();
    eprintln!("token length: {} bytes", f.token.len());
    let mut g = c.benchmark_group(prefix);
    g.throughput(Throughput::Elements(1));
    // The proxy's hot path: a cache hit, route requirement checked.
    g.bench_function("cache_hit", |b| {
        b.iter(|| {
            f.cached
                .verify_now(black_box(&f.token), black_box(&f.req))
                .unwrap()
        });
    });
    // What a hit spends on its cache key: SHA-256 of the token.
    g.bench_function("cache_key_sha256", |b| {
        b.iter(|| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(f.token.as_bytes()))
        });
    });
    // A miss through the Authorizer (cache disabled): decode, select issuer, verify, claims.
    g.bench_function("uncached_rs256_authorizer", |b| {
        b.iter(|| {
            f.uncached
                .verify_now(black_box(&f.token), black_box(&f.req))
                .unwrap()
        });
    });
    // The pure core.
    g.bench_function("uncached_rs256", |b| {
        b.iter(|| verify(black_box(&f.core_token), &f.rules, &f.keys, f.now).unwrap());
    });
    // The signature check alone, to see what decoding and claim checks add.
    let (input, sig) = f.core_token.rsplit_once('.').unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    g.bench_function("rs256_signature_only", |b| {
        b.iter(|| {
            f.keys
                .verify("k1", Algorithm::RS256, black_box(input.as_bytes()), &sig)
                .unwrap();
        });
    });
    // Splitting, base64 and JSON parsing alone (no signature, no claim checks).
    g.bench_function("decode_only", |b| {
        b.iter(|| poolgate_authorizer::jose::decode(black_box(&f.core_token), 16 * 1024).unwrap());
    });
    // For comparison: jsonwebtoken 11 (aws_lc_rs backend) on the same token and key, with the
    // same time and issuer checks; it builds the RSA key from n and e on every decode.
    let jwk = serde_json::from_str::<serde_json::Value>(&f.jwks_doc).unwrap()["keys"][0].clone();
    let dk = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[&*f.rules.iss]);
    validation.validate_aud = false;
    validation.leeway = 0;
    assert!(jsonwebtoken::decode::<serde_json::Value>(&f.core_token, &dk, &validation).is_ok());
    g.bench_function("jsonwebtoken11_decode_rs256", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&f.core_token), &dk, &validation)
                .unwrap()
        });
    });
    // Parsing a Cognito-shaped JWKS (two RSA-2048 keys) into ready keys.
    g.bench_function("jwks_parse_2_rsa_keys", |b| {
        b.iter(|| {
            KeySet::from_jwks(black_box(f.jwks_doc.as_bytes()), &[Algorithm::RS256]).unwrap()
        });
    });
    g.finish();
}

fn wall(c: &mut Criterion) {
    run(c, "wall");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    run(c, "cpu");
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
