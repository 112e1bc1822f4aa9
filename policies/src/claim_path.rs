//! Where a claim lives in a token: a JSON Pointer (RFC 6901) into the claims.
//!
//! One syntax for every issuer: `/cognito:groups`, `/realm_access/roles` (Keycloak's nested
//! roles), `/scp`, `/https:~1~1example.com~1roles` (an Auth0 namespaced claim, `/` written
//! `~1`). Each `/` starts a member name, taken literally (`.` and `:` are ordinary
//! characters), with `~1` for `/` and `~0` for `~`; an all-digit name also indexes an array.

use std::fmt;

/// A parsed claim path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClaimPath {
    pointer: String,
    segments: Vec<String>,
}

impl ClaimPath {
    /// Parses a JSON Pointer; the error says what is wrong.
    pub fn parse(pointer: &str) -> Result<Self, String> {
        let Some(rest) = pointer.strip_prefix('/') else {
            return Err(
                "a claim path starts with `/`: write `/cognito:groups` or `/realm_access/roles`"
                    .into(),
            );
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let mut seg = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => seg.push('~'),
                        Some('1') => seg.push('/'),
                        _ => {
                            return Err(
                                "`~` must be followed by `0` (for `~`) or `1` (for `/`)".into()
                            );
                        }
                    },
                    c => seg.push(c),
                }
            }
            if seg.is_empty() {
                return Err(
                    "a claim path has an empty member name (`//`, or a trailing `/`)".into(),
                );
            }
            segments.push(seg);
        }
        Ok(Self {
            pointer: pointer.to_owned(),
            segments,
        })
    }

    /// A path to a top-level claim.
    pub fn top(name: &str) -> Self {
        Self {
            pointer: format!("/{}", name.replace('~', "~0").replace('/', "~1")),
            segments: vec![name.to_owned()],
        }
    }

    /// The member names, unescaped, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The top-level claim the path starts at.
    pub fn root(&self) -> &str {
        self.segments.first().map_or("", String::as_str)
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pointer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn pointers() {
        let seg = |p: &str| ClaimPath::parse(p).unwrap().segments().to_vec();
        assert_eq!(seg("/cognito:groups"), ["cognito:groups"]);
        assert_eq!(seg("/realm_access/roles"), ["realm_access", "roles"]);
        assert_eq!(
            seg("/https:~1~1example.com~1roles"),
            ["https://example.com/roles"]
        );
        assert_eq!(seg("/a~0b/0"), ["a~b", "0"]);
        assert_eq!(seg("/groups.admin"), ["groups.admin"]);
        for bad in ["cognito:groups", "", "/", "//x", "/a/", "/a~2", "/a~"] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ClaimPath::top("a/b~c").to_string(), "/a~1b~0c");
        assert_eq!(
            ClaimPath::parse("/a~1b~0c").unwrap(),
            ClaimPath::top("a/b~c")
        );
    }
}
