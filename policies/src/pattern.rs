//! Host and path patterns, shared by routes (`{name}` captures) and role statements
//! (`{claim}` variables).

use crate::normalize::normalize_path;
use std::cmp::Ordering;

/// One segment of a path pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// Matches exactly this text (case-sensitive, in normalised form).
    Lit(String),
    /// `*`: any one segment.
    One,
    /// `{name}`: any one segment, captured (routes) or a claim variable (statements).
    Param(String),
    /// `**`, last only: zero or more whole segments.
    Rest,
}

impl Seg {
    /// Rank used for specificity: literal > one segment > end of path > `**`.
    fn rank(&self) -> u8 {
        match self {
            Seg::Lit(_) => 4,
            Seg::One | Seg::Param(_) => 3,
            Seg::Rest => 1,
        }
    }
}

/// Rank of "the pattern ends here" (an exact end beats `**`).
const END_RANK: u8 = 2;

/// A parsed path pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathPattern {
    /// As written.
    pub raw: String,
    pub segs: Vec<Seg>,
}

/// A host pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Any host (no `host:` given).
    Any,
    /// Exactly this host (lower case).
    Exact(String),
    /// `*.example.com`: exactly one label before `.example.com` (stored as `example.com`).
    Wildcard(String),
}

impl HostPattern {
    /// Exact (3) > wildcard (2) > any (1).
    pub fn rank(&self) -> u8 {
        match self {
            HostPattern::Exact(_) => 3,
            HostPattern::Wildcard(_) => 2,
            HostPattern::Any => 1,
        }
    }

    /// Whether a normalised host (lower case, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// Parses a `host:` value.
pub fn parse_host(raw: &str) -> Result<HostPattern, String> {
    let lower = raw.to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(if name.contains(':') {
            format!("invalid host `{raw}`: ports are not part of host patterns")
        } else if name.contains('*') {
            format!("invalid host `{raw}`: `*` is only allowed as the whole first label")
        } else {
            format!("invalid host `{raw}`")
        });
    }
    Ok(if wild {
        HostPattern::Wildcard(name.to_owned())
    } else {
        HostPattern::Exact(name.to_owned())
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'))
}

/// Parses a path pattern (`/orders/{id}/**`).
pub fn parse_path(raw: &str) -> Result<PathPattern, String> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(format!("path pattern `{raw}` does not start with `/`"));
    };
    let mut segs = Vec::new();
    if !rest.is_empty() {
        let parts: Vec<&str> = rest.split('/').collect();
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let last = i + 1 == n;
            let seg = match part {
                "**" if last => Seg::Rest,
                "**" => {
                    return Err(format!(
                        "`**` in `{raw}` is only allowed as the last segment"
                    ));
                }
                "*" => Seg::One,
                "" if last => Seg::Lit(String::new()),
                "." | ".." => {
                    return Err(format!(
                        "path pattern `{raw}` has a dot-segment `{part}`: requests are normalised and never contain one"
                    ));
                }
                "" => return Err(format!("path pattern `{raw}` has an empty segment (`//`)")),
                p if p.starts_with('{') && p.ends_with('}') => {
                    let name = p.get(1..p.len() - 1).unwrap_or("");
                    if !valid_name(name) {
                        return Err(format!("invalid variable `{p}` in `{raw}`"));
                    }
                    Seg::Param(name.to_owned())
                }
                p if p.contains(['*', '{', '}']) => {
                    return Err(format!(
                        "`*` and `{{name}}` must be a whole segment in `{raw}`"
                    ));
                }
                p => {
                    let as_path = format!("/{p}");
                    match normalize_path(&as_path) {
                        Ok(n) if n == as_path => Seg::Lit(p.to_owned()),
                        Ok(n) => {
                            return Err(format!(
                                "segment `{p}` of `{raw}` is not normalised: requests arrive as `{}`",
                                n.trim_start_matches('/')
                            ));
                        }
                        Err(e) => {
                            return Err(format!("segment `{p}` of `{raw}` can never match: {e}"));
                        }
                    }
                }
            };
            segs.push(seg);
        }
    }
    Ok(PathPattern {
        raw: raw.to_owned(),
        segs,
    })
}

/// The segments of a normalised request path (`/` has none; a trailing slash is an empty last one).
pub fn request_segments(path: &str) -> impl Iterator<Item = &str> + Clone {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').filter(move |_| !rest.is_empty())
}

impl PathPattern {
    /// Specificity key: ranks per position, ending with the end-of-path rank unless `**`.
    pub fn specificity(&self) -> Vec<u8> {
        let mut key: Vec<u8> = self.segs.iter().map(Seg::rank).collect();
        if !matches!(self.segs.last(), Some(Seg::Rest)) {
            key.push(END_RANK);
        }
        key
    }

    /// The shape that decides which requests match (`*` and `{x}` are the same shape).
    pub fn shape(&self) -> Vec<Seg> {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Param(_) => Seg::One,
                other => other.clone(),
            })
            .collect()
    }

    /// Plain matching against a normalised path, with captures (reference implementation;
    /// the route matcher uses a trie).
    pub fn matches<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let mut caps = Vec::new();
        let mut req = request_segments(path);
        for seg in &self.segs {
            match seg {
                Seg::Rest => return Some(caps),
                Seg::Lit(l) => {
                    if req.next()? != l {
                        return None;
                    }
                }
                Seg::One => {
                    req.next()?;
                }
                Seg::Param(name) => caps.push((name.as_str(), req.next()?)),
            }
        }
        req.next().is_none().then_some(caps)
    }
}

/// Compares two specificity keys: `Greater` means `a` is more specific.
pub fn cmp_specificity(a: &[u8], b: &[u8]) -> Ordering {
    a.cmp(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = parse_path("/admin/**").unwrap();
        assert!(p.matches("/admin").is_some());
        assert!(p.matches("/admin/").is_some());
        assert!(p.matches("/admin/x/y").is_some());
        assert!(p.matches("/administrator").is_none());
        let p = parse_path("/users/{id}/orders/*").unwrap();
        assert_eq!(p.matches("/users/42/orders/7").unwrap(), vec![("id", "42")]);
        assert!(p.matches("/users/42/orders").is_none());
        assert!(p.matches("/users/42/orders/7/8").is_none());
        let root = parse_path("/").unwrap();
        assert!(root.segs.is_empty());
        assert!(root.matches("/").is_some());
        assert!(root.matches("/a").is_none());
        assert!(parse_path("/**").unwrap().matches("/").is_some());
    }

    #[test]
    fn rejects_bad_patterns() {
        for (bad, msg) in [
            ("orders", "does not start with `/`"),
            ("/a/**/b", "only allowed as the last segment"),
            ("/a//b", "empty segment"),
            ("/a*", "must be a whole segment"),
            ("/{}", "invalid variable"),
            ("/a/../b", "dot-segment `..`"),
            ("/%7euser", "not normalised"),
            ("/a%2fb", "can never match"),
        ] {
            let err = parse_path(bad).unwrap_err();
            assert!(err.contains(msg), "{bad}: {err}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("API.example.com").unwrap(),
            HostPattern::Exact("api.example.com".into())
        );
        let w = parse_host("*.example.com").unwrap();
        assert!(w.matches("a.example.com"));
        assert!(!w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(parse_host("a.*.com").is_err());
        assert!(parse_host("a.com:80").unwrap_err().contains("ports"));
    }

    #[test]
    fn specificity_order() {
        let k = |p: &str| parse_path(p).unwrap().specificity();
        assert!(k("/a/b") > k("/a/*"));
        assert!(k("/a/*") > k("/a/**"));
        assert!(k("/a") > k("/a/**"));
        assert!(k("/a/b/**") > k("/a/**"));
        assert!(k("/a/{x}") == k("/a/*"));
    }
}
