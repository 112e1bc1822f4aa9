//! Path normalisation: the path the policy judges is the path the backend receives.
//!
//! Rules (see `docs/policies.md`):
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; every other
//!   escape is kept, with its hex digits in upper case;
//! - `.` segments are removed, `..` removes the previous segment (above the root is an error);
//! - repeated slashes are merged; a trailing slash is kept;
//! - refused: `%2F`/`%5C` (encoded `/` `\`), `\`, `;`, NUL and control bytes (raw or encoded),
//!   raw non-ASCII, characters not allowed in a path, malformed escapes, escapes that decode to
//!   invalid UTF-8 (including overlong forms such as `%C0%AE`), and any segment that decodes —
//!   once or after further decoding (`%2e%2e`, `%252e`) — to a dot-segment, `/` or `\`;
//! - matching is case-sensitive; the query is never touched.

use std::borrow::Cow;

/// Why a path cannot be normalised safely (the proxy answers 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with `/`")]
    NotOriginForm,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains an encoded `/` or `\\`")]
    EncodedSlash,
    #[error("the path contains a control character or NUL")]
    Control,
    #[error("the path contains a malformed percent escape")]
    BadEscape,
    #[error("the path decodes to invalid UTF-8")]
    InvalidUtf8,
    #[error("the path contains raw non-ASCII bytes")]
    NonAscii,
    #[error("the path contains `{0}`, which is not allowed in a path")]
    InvalidChar(char),
    #[error("the path contains `;` (path parameters are refused)")]
    Semicolon,
    #[error("the path contains an encoded dot-segment")]
    EncodedDotSegment,
    #[error("the path climbs above the root")]
    AboveRoot,
    #[error("the path contains a fragment")]
    Fragment,
    #[error("a path segment is percent-encoded more than {MAX_DECODES} times over")]
    EncodedTooDeep,
}

/// How many times over a segment may be percent-encoded (`%252e` is twice). Each further pass
/// would cost a pass over the segment, so deeper nesting is refused instead of decoded.
pub const MAX_DECODES: usize = 8;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn upper_hex(n: u8) -> char {
    char::from_digit(u32::from(n), 16).map_or('0', |c| c.to_ascii_uppercase())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters allowed raw in a segment besides unreserved ones (RFC 3986 sub-delims, `:`, `@`),
/// minus `;`, which some servers treat as a parameter separator.
fn is_allowed_raw(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        )
}

/// Splits a request target into path and query (`None` when there is no `?`).
pub fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// Normalises one segment into `out`; returns its fully-decoded bytes for the dot check.
fn segment(raw: &str, out: &mut String) -> Result<(), PathError> {
    let bytes = raw.as_bytes();
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = h * 16 + l;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSlash),
                    0..=0x1f | 0x7f => return Err(PathError::Control),
                    _ if is_unreserved(v) => out.push(char::from(v)),
                    _ => {
                        out.push('%');
                        out.push(upper_hex(h));
                        out.push(upper_hex(l));
                    }
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            b'#' => return Err(PathError::Fragment),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            0x80.. => return Err(PathError::NonAscii),
            _ if is_allowed_raw(b) => {
                out.push(char::from(b));
                decoded.push(b);
                i += 1;
            }
            _ => return Err(PathError::InvalidChar(char::from(b))),
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    check_deep_decoding(decoded)
}

/// Decodes again and again (a backend might) until nothing is left to decode: the result must
/// never be a dot-segment, `/` or `\`. `bytes` is the segment decoded once; a segment that
/// still decodes after [`MAX_DECODES`] passes is refused (nesting would make the work
/// quadratic in the segment's length).
fn check_deep_decoding(mut bytes: Vec<u8>) -> Result<(), PathError> {
    let mut decodes = 1;
    while bytes.contains(&b'%') {
        decodes += 1;
        if decodes > MAX_DECODES {
            return Err(PathError::EncodedTooDeep);
        }
        let mut next = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let esc = (b == b'%')
                .then(|| {
                    let h = bytes.get(i + 1).copied().and_then(hex)?;
                    let l = bytes.get(i + 2).copied().and_then(hex)?;
                    Some(h * 16 + l)
                })
                .flatten();
            match esc {
                Some(v) => {
                    if matches!(v, b'/' | b'\\') {
                        return Err(PathError::EncodedSlash);
                    }
                    if v < 0x20 || v == 0x7f {
                        return Err(PathError::Control);
                    }
                    next.push(v);
                    i += 3;
                }
                None => {
                    next.push(b);
                    i += 1;
                }
            }
        }
        if next == b"." || next == b".." {
            return Err(PathError::EncodedDotSegment);
        }
        if next.len() == bytes.len() {
            // Only `%` signs not followed by two hex digits: decoding changes nothing more.
            break;
        }
        bytes = next;
    }
    Ok(())
}

/// Normalises a path (without query). Borrowed when already normal.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    let mut out = String::with_capacity(path.len());
    // Start offsets (in `out`) of the kept segments, so `..` can truncate.
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing_slash = false;
    let raw_segments = path.split('/').skip(1);
    let count = path.split('/').count().saturating_sub(1);
    for (n, raw) in raw_segments.enumerate() {
        let last = n + 1 == count;
        match raw {
            "" => {
                trailing_slash = last;
                continue;
            }
            "." => {
                trailing_slash = last;
                continue;
            }
            ".." => {
                let start = starts.pop().ok_or(PathError::AboveRoot)?;
                out.truncate(start);
                trailing_slash = last;
                continue;
            }
            _ => {}
        }
        trailing_slash = false;
        starts.push(out.len());
        out.push('/');
        let before = out.len();
        segment(raw, &mut out)?;
        // A segment whose decoding is `.`/`..` (e.g. `%2e`, `.%2E`) is refused, never resolved.
        let seg = out.get(before..).unwrap_or("");
        if seg == "." || seg == ".." {
            return Err(PathError::EncodedDotSegment);
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    if out == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::PathError::*;
    use super::*;

    #[test]
    fn hostile_table() {
        let ok: &[(&str, &str)] = &[
            ("/", "/"),
            ("/orders", "/orders"),
            ("/orders/", "/orders/"),
            ("//orders///1", "/orders/1"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/a/../../", "ERR"),
            ("/%41%62c", "/Abc"),
            ("/a%7e", "/a~"),
            ("/a%2d%5F", "/a-_"),
            ("/a%3f", "/a%3F"),
            ("/a%20b", "/a%20b"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/Admin", "/Admin"),
            ("/a.", "/a."),
            ("/a..", "/a.."),
            ("/...", "/..."),
            ("/a/b.", "/a/b."),
            ("/users/me@x.com", "/users/me@x.com"),
            ("/a:b,c=d", "/a:b,c=d"),
            ("/%25", "/%25"),
        ];
        for (input, want) in ok {
            if *want == "ERR" {
                assert!(normalize_path(input).is_err(), "{input}");
                continue;
            }
            assert_eq!(normalize_path(input).as_deref(), Ok(*want), "{input}");
        }
        let bad: &[(&str, PathError)] = &[
            ("orders", NotOriginForm),
            ("*", NotOriginForm),
            ("/..", AboveRoot),
            ("/a/../..", AboveRoot),
            ("/%2e%2e/etc", EncodedDotSegment),
            ("/a/%2E%2E/b", EncodedDotSegment),
            ("/a/%2e", EncodedDotSegment),
            ("/a/.%2e/b", EncodedDotSegment),
            ("/a/%252e%252e/b", EncodedDotSegment),
            ("/a/%25252e/b", EncodedDotSegment),
            // Any depth: a backend that decodes five or eight times must not see `..` either.
            ("/%25252525252e%25252525252e/admin", EncodedDotSegment),
            ("/a/%252525252525252e/b", EncodedDotSegment),
            ("/a%2525252525252fb", EncodedSlash),
            // Nine times over: refused before it is decoded to the end, whatever it hides.
            ("/a/%25252525252525252e/b", EncodedTooDeep),
            ("/a/%252525252525252541/b", EncodedTooDeep),
            ("/a%2fb", EncodedSlash),
            ("/a%2Fb", EncodedSlash),
            ("/a%5cb", EncodedSlash),
            ("/a%252Fb", EncodedSlash),
            ("/a\\b", Backslash),
            ("/admin;x/secret", Semicolon),
            ("/a%00", Control),
            ("/a\0", Control),
            ("/a\nb", Control),
            ("/a%0d%0a", Control),
            ("/a%c0%ae", InvalidUtf8),
            ("/%c0%ae%c0%ae/etc", InvalidUtf8),
            ("/a%e0%80%ae", InvalidUtf8),
            ("/a%ff", InvalidUtf8),
            ("/a%", BadEscape),
            ("/a%2", BadEscape),
            ("/a%zz", BadEscape),
            ("/caf\u{e9}", NonAscii),
            ("/a b", InvalidChar(' ')),
            ("/a<b", InvalidChar('<')),
            ("/a#frag", Fragment),
        ];
        for (input, want) in bad {
            assert_eq!(normalize_path(input), Err(want.clone()), "{input}");
        }
    }

    #[test]
    fn borrowed_when_already_normal() {
        assert!(matches!(normalize_path("/a/b"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize_path("/a//b"), Ok(Cow::Owned(_))));
    }

    #[test]
    fn query_is_split_untouched() {
        assert_eq!(
            split_query("/a/../b?x=%2e%2e/.."),
            ("/a/../b", Some("x=%2e%2e/.."))
        );
        assert_eq!(split_query("/a"), ("/a", None));
    }

    #[test]
    fn idempotent_on_samples() {
        for p in ["/a//b/./c/..", "/%41/%7e", "/x/%3a/"] {
            let once = normalize_path(p).unwrap().into_owned();
            assert_eq!(normalize_path(&once).unwrap(), once);
        }
    }
}
