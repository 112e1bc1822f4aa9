//! The verified-token cache: SHA-256 of the token → the verified identity, until its `exp`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

use crate::config::CacheConfig;
use crate::identity::Identity;

/// A 256-bit digest of the token: one token can never be taken for another.
pub(crate) type Key = [u8; 32];

#[derive(Clone)]
pub(crate) struct Entry {
    pub identity: Arc<Identity>,
    /// Unix second from which the token is expired (`exp` + leeway); checked on every hit.
    pub expires_at: u64,
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
    cache: moka::sync::Cache<Key, Entry>,
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
                .build(),
            margin: config.expire_margin,
            max_ttl: config.max_ttl,
        })
    }

    #[inline]
    pub fn key(token: &str) -> Key {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(d.as_ref());
        k
    }

    #[inline]
    pub fn get(&self, key: &Key) -> Option<Entry> {
        self.cache.get(key)
    }

    /// Caches a verified identity: kept until `exp` (unix seconds) less the margin, at most
    /// `max_ttl`; refused on a hit from `expires_at` (`exp` + leeway) on.
    pub fn insert(&self, key: Key, identity: Arc<Identity>, expires_at: u64, now: u64) {
        let left = Duration::from_secs(identity.exp.saturating_sub(now));
        let ttl = left.saturating_sub(self.margin).min(self.max_ttl);
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(
            key,
            Entry {
                identity,
                expires_at,
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
