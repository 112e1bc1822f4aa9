//! What the load generator sends: a list of prepared requests, cycled or sent once each,
//! that a scenario can swap mid-run (key rotation) without stopping the load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use http::{HeaderValue, Method, Uri};

/// One prepared request and the status poolgate should answer it with.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub uri: Uri,
    /// `Authorization: Bearer …`, prepared once.
    pub auth: Option<HeaderValue>,
    pub expect: u16,
}

impl Req {
    /// A GET of `path` with an optional bearer token.
    pub fn get(path: &str, token: Option<&str>, expect: u16) -> Req {
        Req::new(Method::GET, path, token, expect)
    }

    pub fn new(method: Method, path: &str, token: Option<&str>, expect: u16) -> Req {
        Req {
            method,
            uri: Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/")),
            auth: token.and_then(|t| HeaderValue::try_from(format!("Bearer {t}")).ok()),
            expect,
        }
    }
}

/// The requests of one load run.
pub struct Workload {
    reqs: ArcSwap<Vec<Req>>,
    next: AtomicUsize,
    /// Send each request once, then stop (every token new: `cold`, `cache`).
    once: bool,
}

impl Workload {
    /// Cycles through `reqs` for as long as the run lasts.
    pub fn cycle(reqs: Vec<Req>) -> Arc<Workload> {
        Arc::new(Workload {
            reqs: ArcSwap::from_pointee(reqs),
            next: AtomicUsize::new(0),
            once: false,
        })
    }

    /// Sends each of `reqs` once; the run ends when they are used up.
    pub fn once(reqs: Vec<Req>) -> Arc<Workload> {
        Arc::new(Workload {
            reqs: ArcSwap::from_pointee(reqs),
            next: AtomicUsize::new(0),
            once: true,
        })
    }

    /// The next request, or `None` when a send-once list is used up.
    pub fn next(&self) -> Option<Req> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let reqs = self.reqs.load();
        if reqs.is_empty() {
            return None;
        }
        if self.once {
            reqs.get(i).cloned()
        } else {
            reqs.get(i % reqs.len()).cloned()
        }
    }

    /// Replaces the list; connections pick the new one up on their next request.
    pub fn replace(&self, reqs: Vec<Req>) {
        self.reqs.store(Arc::new(reqs));
    }

    pub fn is_once(&self) -> bool {
        self.once
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_wraps_and_once_stops() {
        let reqs = vec![Req::get("/a", None, 200), Req::get("/b", Some("t"), 401)];
        let c = Workload::cycle(reqs.clone());
        let paths: Vec<String> = (0..3)
            .filter_map(|_| c.next())
            .map(|r| r.uri.path().to_owned())
            .collect();
        assert_eq!(paths, ["/a", "/b", "/a"]);
        let o = Workload::once(reqs);
        assert!(o.next().is_some());
        let b = o.next().unwrap();
        assert_eq!(b.auth.unwrap(), "Bearer t");
        assert!(o.next().is_none());
    }

    #[test]
    fn replace_takes_effect() {
        let w = Workload::cycle(vec![Req::get("/old", None, 200)]);
        w.replace(vec![Req::get("/new", None, 200)]);
        assert_eq!(w.next().unwrap().uri.path(), "/new");
    }
}
