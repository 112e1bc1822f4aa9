//! The verified-token cache: the token's SHA-256 → the verified identity, until its `exp`.
//!
//! Keyed on a 256-bit digest of the whole token, so one token can never be taken for another
//! (that would take a SHA-256 collision), and an entry does not hold a copy of its ~1 KiB token.
//! The map hashes the digest with foldhash, seeded per process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::CacheConfig;
use crate::identity::Identity;

/// SHA-256 of the token.
pub(crate) type Key = [u8; 32];

/// The cache key of a token. Computed on the stack: a hit stays allocation-free.
#[inline]
pub(crate) fn key_of(token: &str) -> Option<Key> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    Key::try_from(digest.as_ref()).ok()
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub identity: Arc<Identity>,
    /// The index of the issuer whose keys verified it: a hit also needs those keys usable.
    pub issuer: usize,
    /// Unix second from which the token is expired (`exp` + leeway); checked on every hit.
    pub expires_at: u64,
    /// The generation of the key set that verified it: a hit also needs the issuer's current
    /// set to vouch for that generation (no key of it lost or changed since).
    pub generation: u64,
    /// How long moka keeps it: until `exp` less the margin, at most `max_ttl`.
    ttl: Duration,
}

struct PerEntryExpiry;

impl moka::Expiry<Key, Entry> for PerEntryExpiry {
    fn expire_after_create(&self, _: &Key, value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[derive(Clone)]
pub(crate) struct TokenCache {
    cache: moka::sync::Cache<Key, Entry, foldhash::quality::RandomState>,
    margin: Duration,
    max_ttl: Duration,
}

impl TokenCache {
    pub fn new(config: &CacheConfig) -> Option<TokenCache> {
        if config.capacity == 0 {
            return None;
        }
        Some(TokenCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(config.capacity)
                .expire_after(PerEntryExpiry)
                .build_with_hasher(foldhash::quality::RandomState::default()),
            margin: config.expire_margin,
            max_ttl: config.max_ttl,
        })
    }

    #[inline]
    pub fn get(&self, key: &Key) -> Option<Entry> {
        self.cache.get(key)
    }

    /// Caches a verified identity: kept until `exp` (unix seconds) less the margin, at most
    /// `max_ttl`; refused on a hit from `expires_at` (`exp` + leeway) on.
    pub fn insert(
        &self,
        key: Key,
        identity: Arc<Identity>,
        issuer: usize,
        generation: u64,
        expires_at: u64,
        now: u64,
    ) {
        let left = Duration::from_secs(identity.exp.saturating_sub(now));
        let ttl = left.saturating_sub(self.margin).min(self.max_ttl);
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(
            key,
            Entry {
                identity,
                issuer,
                expires_at,
                generation,
                ttl,
            },
        );
    }

    pub fn invalidate(&self, key: &Key) {
        self.cache.invalidate(key);
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Runs moka's pending maintenance (tests use it to observe counts).
    pub fn sync(&self) {
        self.cache.run_pending_tasks();
    }
}
