//! HTTP methods as a small bit set.

/// The methods a policy can name.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// A set of methods; `any` also covers methods not in [`METHODS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MethodSet {
    any: bool,
    bits: u16,
}

impl MethodSet {
    /// Every method, including extension methods.
    pub const ANY: MethodSet = MethodSet { any: true, bits: 0 };

    /// The bit of a method name (case-sensitive, as HTTP is).
    fn bit(method: &str) -> Option<u16> {
        METHODS.iter().position(|m| *m == method).map(|i| 1u16 << i)
    }

    /// Adds a named method; `false` if the name is unknown.
    pub fn insert(&mut self, method: &str) -> bool {
        if method == "*" {
            self.any = true;
            return true;
        }
        match Self::bit(method) {
            Some(b) => {
                self.bits |= b;
                true
            }
            None => false,
        }
    }

    /// Whether the set covers every method.
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        !self.any && self.bits == 0
    }

    /// Whether `method` (as received) is in the set.
    pub fn contains(&self, method: &str) -> bool {
        self.any || Self::bit(method).is_some_and(|b| self.bits & b != 0)
    }

    /// Whether every method of `other` is in `self`.
    pub fn covers(&self, other: &MethodSet) -> bool {
        self.any || (!other.any && other.bits & !self.bits == 0)
    }

    /// Whether some method is in both.
    pub fn intersects(&self, other: &MethodSet) -> bool {
        self.any || other.any || self.bits & other.bits != 0
    }

    /// The methods named, for messages (`*` when any).
    pub fn names(&self) -> Vec<&'static str> {
        if self.any {
            return vec!["*"];
        }
        METHODS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, m)| *m)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut get = MethodSet::default();
        assert!(get.insert("GET"));
        assert!(!get.insert("get"));
        let mut get_put = get;
        get_put.insert("PUT");
        assert!(get_put.covers(&get));
        assert!(!get.covers(&get_put));
        assert!(MethodSet::ANY.covers(&get_put));
        assert!(!get_put.covers(&MethodSet::ANY));
        assert!(get.intersects(&get_put));
        assert!(get.contains("GET") && !get.contains("POST") && !get.contains("PURGE"));
        assert!(MethodSet::ANY.contains("PURGE"));
        assert_eq!(get_put.names(), vec!["GET", "PUT"]);
    }
}
