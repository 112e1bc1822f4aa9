//! The request's authority (`Host`, or HTTP/2's `:authority`), parsed once and strictly.
//!
//! Routes are matched on the parsed host and the backend is sent the same value, so what was
//! judged is what is forwarded. Anything a backend could read differently is refused:
//!
//! - a name: dot-separated labels of ASCII letters, digits, `-` and `_`, each 1–63 bytes, at
//!   most 253 bytes in all; a name whose last label is all digits must be an IPv4 address in
//!   dotted-decimal form (no `127.1`, no `0x7f.0.0.1`, no leading zeros);
//! - `[IPv6]` (no zone identifier, no IPvFuture);
//! - then, optionally, `:` and a port of one to five digits, at most 65535.
//!
//! Everything else (an empty value, a second colon, `,`, `/`, `%`, `@`, whitespace, brackets
//! around a name, an empty label such as `..`, non-ASCII bytes) is an error. The host is
//! lower-cased and one trailing dot is dropped (`Example.COM.` is `example.com`): name-based
//! virtual hosts compare case-insensitively and ignore that dot, so the backend loses nothing.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest host name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME: usize = 253;
/// Longest label.
const MAX_LABEL: usize = 63;

/// Why an authority was refused; [`AuthorityError::code`] is the reason a client sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("the host is empty")]
    Empty,
    #[error("the host is not a name, an IPv4 address or a bracketed IPv6 address")]
    BadHost,
    #[error("the port is not one to five digits up to 65535")]
    BadPort,
}

impl AuthorityError {
    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            AuthorityError::Empty => "host_empty",
            AuthorityError::BadHost => "host_invalid",
            AuthorityError::BadPort => "host_port_invalid",
        }
    }
}

/// A parsed authority: the host (lower case, no trailing dot; IPv6 in brackets, in its
/// canonical form) and the port, if one was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority<'a> {
    host: Cow<'a, str>,
    port: Option<u16>,
    /// The input was already in its canonical form: it can be forwarded as it came.
    canonical: bool,
}

impl<'a> Authority<'a> {
    /// Parses a `Host` value or an `:authority`.
    pub fn parse(raw: &'a [u8]) -> Result<Self, AuthorityError> {
        if raw.is_empty() {
            return Err(AuthorityError::Empty);
        }
        let text = std::str::from_utf8(raw).map_err(|_| AuthorityError::BadHost)?;
        let (host, port_text) = split_port(text)?;
        let port = port_text.map(parse_port).transpose()?;
        let port_canonical = port_text.is_none_or(|p| !p.starts_with('0') || p == "0");
        let (host, host_canonical) = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(AuthorityError::BadHost)?;
            let ip: Ipv6Addr = inner.parse().map_err(|_| AuthorityError::BadHost)?;
            let formatted = format!("[{ip}]");
            let same = formatted == host;
            (Cow::Owned(formatted), same)
        } else {
            name(host)?
        };
        Ok(Self {
            host,
            port,
            canonical: host_canonical && port_canonical,
        })
    }

    /// The host routes are matched on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if the authority named one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether the input was already `host[:port]` in canonical form, so the bytes that were
    /// parsed can be forwarded unchanged.
    pub fn is_canonical(&self) -> bool {
        self.canonical
    }
}

impl std::fmt::Display for Authority<'_> {
    /// `host` or `host:port`: the value the backend is sent.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Splits `host[:port]`; a bracketed IPv6 address keeps its colons.
fn split_port(text: &str) -> Result<(&str, Option<&str>), AuthorityError> {
    let after_host = if text.starts_with('[') {
        text.find(']')
            .map(|i| i + 1)
            .ok_or(AuthorityError::BadHost)?
    } else {
        text.find(':').unwrap_or(text.len())
    };
    let (host, rest) = text.split_at(after_host);
    if host.is_empty() {
        return Err(AuthorityError::Empty);
    }
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Ok((host, None)),
        None => Err(AuthorityError::BadHost),
        Some(port) => Ok((host, Some(port))),
    }
}

fn parse_port(text: &str) -> Result<u16, AuthorityError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthorityError::BadPort);
    }
    text.parse().map_err(|_| AuthorityError::BadPort)
}

/// A name (or dotted-decimal IPv4), lower-cased, without its trailing dot. One pass over the
/// bytes: this runs on every request.
fn name(text: &str) -> Result<(Cow<'_, str>, bool), AuthorityError> {
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if trimmed.is_empty() || trimmed.len() > MAX_NAME {
        return Err(AuthorityError::BadHost);
    }
    let (mut label_len, mut last_all_digits, mut upper) = (0usize, true, false);
    for b in trimmed.bytes() {
        match b {
            b'.' => {
                if label_len == 0 {
                    return Err(AuthorityError::BadHost);
                }
                (label_len, last_all_digits) = (0, true);
                continue;
            }
            b'0'..=b'9' => {}
            b'a'..=b'z' | b'-' | b'_' => last_all_digits = false,
            b'A'..=b'Z' => (last_all_digits, upper) = (false, true),
            _ => return Err(AuthorityError::BadHost),
        }
        label_len += 1;
        if label_len > MAX_LABEL {
            return Err(AuthorityError::BadHost);
        }
    }
    if label_len == 0 {
        return Err(AuthorityError::BadHost);
    }
    // A name ending in a numeric label can only be an IPv4 address, in its one strict form.
    if last_all_digits && trimmed.parse::<Ipv4Addr>().is_err() {
        return Err(AuthorityError::BadHost);
    }
    let canonical = !upper && trimmed.len() == text.len();
    Ok(if upper {
        (Cow::Owned(trimmed.to_ascii_lowercase()), false)
    } else {
        (Cow::Borrowed(trimmed), canonical)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn ok(raw: &str) -> (String, Option<u16>, bool) {
        let a = Authority::parse(raw.as_bytes()).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        (a.host().to_owned(), a.port(), a.is_canonical())
    }

    fn err(raw: &[u8]) -> AuthorityError {
        match Authority::parse(raw) {
            Ok(a) => panic!("{raw:?} parsed as {a}"),
            Err(e) => e,
        }
    }

    #[test]
    fn names_addresses_and_ports() {
        assert_eq!(ok("example.com"), ("example.com".into(), None, true));
        assert_eq!(
            ok("api.example.com:8080"),
            ("api.example.com".into(), Some(8080), true)
        );
        assert_eq!(ok("localhost"), ("localhost".into(), None, true));
        assert_eq!(
            ok("my_host-1.internal"),
            ("my_host-1.internal".into(), None, true)
        );
        assert_eq!(ok("10.0.0.1:80"), ("10.0.0.1".into(), Some(80), true));
        assert_eq!(ok("[::1]:8443"), ("[::1]".into(), Some(8443), true));
        assert_eq!(ok("[2001:db8::1]"), ("[2001:db8::1]".into(), None, true));
    }

    #[test]
    fn case_trailing_dot_and_port_spelling_are_canonicalised() {
        assert_eq!(
            ok("Admin.Example.COM"),
            ("admin.example.com".into(), None, false)
        );
        assert_eq!(
            ok("admin.example.com."),
            ("admin.example.com".into(), None, false)
        );
        assert_eq!(
            ok("admin.example.com.:443"),
            ("admin.example.com".into(), Some(443), false)
        );
        assert_eq!(ok("a.example:0080"), ("a.example".into(), Some(80), false));
        assert_eq!(ok("[2001:DB8:0::1]"), ("[2001:db8::1]".into(), None, false));
        let a = Authority::parse(b"A.Example.:080").unwrap();
        assert_eq!(a.to_string(), "a.example:80");
    }

    #[test]
    fn everything_a_backend_could_read_differently_is_refused() {
        for raw in [
            "admin.example.com:1:2",
            "admin.example.com:80:",
            "admin.example.com:",
            "admin.example.com:x",
            "admin.example.com:65536",
            "admin.example.com:123456",
            "admin.example.com:-1",
            "admin.example.com: 80",
        ] {
            let e = err(raw.as_bytes());
            assert!(
                matches!(e, AuthorityError::BadPort | AuthorityError::BadHost),
                "{raw}: {e:?}"
            );
        }
        for raw in [
            "admin.example.com\t",
            "admin.example.com,evil.example",
            "admin.example.com/x",
            "[admin.example.com]",
            "admin..example.com",
            ".admin.example.com",
            "admin.example.com..",
            "admin%2eexample.com",
            "admin.%2e",
            "user@admin.example.com",
            "admin.example.com ",
            " admin.example.com",
            "admin example.com",
            "[::1",
            "[::1]x",
            "[fe80::1%25eth0]",
            "[v1.fe]",
            "127.1",
            "0x7f.0.0.1",
            "127.0.0.01",
            "256.0.0.1",
            "example.123",
            "*.example.com",
            "a\\b",
        ] {
            assert_eq!(err(raw.as_bytes()), AuthorityError::BadHost, "{raw}");
        }
        assert_eq!(err("josé.example".as_bytes()), AuthorityError::BadHost);
        assert_eq!(err(b"\xffexample"), AuthorityError::BadHost);
        assert_eq!(err(b""), AuthorityError::Empty);
        assert_eq!(err(b":80"), AuthorityError::Empty);
        assert_eq!(err(b"."), AuthorityError::BadHost);
        let long = format!("{}.example", "a".repeat(64));
        assert_eq!(err(long.as_bytes()), AuthorityError::BadHost);
        let too_long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(err(too_long.as_bytes()), AuthorityError::BadHost);
    }
}
