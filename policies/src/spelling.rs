//! Other spellings of a request path that backends read as the same resource.
//!
//! Backends read one name in many spellings: any ASCII letter case (IIS, case-insensitive file
//! systems, many routers), trailing dots and spaces dropped (IIS and Windows: `secret.`,
//! `secret%20`), an extension taken off (Spring's suffix matching, Rails formats:
//! `secret.json`), path parameters or an NTFS stream cut off (`secret%3Bjsessionid=1`,
//! `secret::$DATA`). Deny statements cover all of them ([`deny_covers`]), and a request whose
//! other spelling would have been judged by a more specific route is refused
//! ([`folded`], used by `Config::shadowing_route`).

/// Bytes after which backends may stop reading a name: `.`, `%` (an encoded character: space,
/// `;`, …), `:` and `+` (a space in form encoding).
const NAME_ENDS: [u8; 4] = *b".%:+";

/// Whether a deny statement's literal segment `want` covers the request segment `got`: `got`
/// starts with `want` in any letter case and either ends there or goes on with a
/// [`NAME_ENDS`] byte.
pub fn deny_covers(want: &str, got: &str) -> bool {
    got.as_bytes()
        .get(..want.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(want.as_bytes()))
        && got
            .as_bytes()
            .get(want.len())
            .is_none_or(|b| NAME_ENDS.contains(b))
}

/// The normalised `path` with each segment lower-cased and cut before its first [`NAME_ENDS`]
/// byte (when something is left); `None` when that is the path itself (the usual case, found
/// without allocating).
pub fn folded(path: &str) -> Option<String> {
    if !path
        .bytes()
        .any(|b| matches!(b, b'A'..=b'Z' | b'.' | b'%' | b':' | b'+'))
    {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let stem = seg
            .find(|c: char| c.is_ascii() && NAME_ENDS.contains(&(c as u8)))
            .filter(|&at| at > 0)
            .and_then(|at| seg.get(..at))
            .unwrap_or(seg);
        out.push_str(&stem.to_ascii_lowercase());
    }
    (out != path).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(folded("/orders/7"), None);
        assert_eq!(folded("/Admin/x").as_deref(), Some("/admin/x"));
        assert_eq!(folded("/admin.json/x").as_deref(), Some("/admin/x"));
        assert_eq!(folded("/admin%20/x").as_deref(), Some("/admin/x"));
        assert_eq!(folded("/admin::$DATA").as_deref(), Some("/admin"));
        assert_eq!(folded("/.well-known/x"), None);
        assert_eq!(folded("/static/App.JS").as_deref(), Some("/static/app"));
    }
}
