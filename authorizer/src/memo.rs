//! A slot in which a consumer of a verified identity keeps what it derives from it (the proxy:
//! the backend's identity headers, the signed assertion), so that a cached identity's next
//! request reuses them instead of building them again.

use std::any::Any;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

type Value = Box<dyn Any + Send + Sync>;

/// Empty when the identity is made; lives and dies with it (with its cache entry). Reads and
/// writes are lock-free. Not part of the identity's value: a clone starts empty and every
/// memo compares equal.
#[derive(Default)]
pub struct Memo(ArcSwapOption<Value>);

impl Memo {
    /// What was kept, if it is a `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.0.load().as_ref()?.downcast_ref::<Arc<T>>().cloned()
    }

    /// Keeps `value`, replacing what was kept (a concurrent `set` may win instead: both hold
    /// what the same identity gives, so either will do).
    pub fn set<T: Any + Send + Sync>(&self, value: Arc<T>) {
        self.0.store(Some(Arc::new(Box::new(value))));
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Memo) -> bool {
        true
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_value_of_the_asked_type_only() {
        let memo = Memo::default();
        assert!(memo.get::<u32>().is_none());
        memo.set(Arc::new(7u32));
        assert_eq!(memo.get::<u32>().as_deref(), Some(&7));
        assert!(memo.get::<String>().is_none());
        memo.set(Arc::new(9u32));
        assert_eq!(memo.get::<u32>().as_deref(), Some(&9));
        assert!(memo.clone().get::<u32>().is_none());
    }
}
