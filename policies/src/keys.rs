//! Every unknown key of a file, not just the first.
//!
//! serde stops at the first unknown key. When a file fails to deserialize, this sweep reads it
//! again as a plain tree of spanned keys and checks every mapping against the fields of the
//! file struct that would read it. Field names come from the serde derives themselves (asked
//! through a tiny introspecting deserializer), so they cannot drift from the format; only the
//! nesting (which key holds which struct) is spelled out here, in [`child`].

use crate::diag::{Diagnostic, Span, suggest};
use crate::file;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::cell::Cell;
use std::fmt;

/// A YAML node reduced to what the sweep needs.
enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Spanned<String>, Spanned<Node>>()? {
                    out.push((k, v));
                }
                Ok(Node::Map(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<Spanned<Node>>()? {
                    out.push(v);
                }
                Ok(Node::Seq(out))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
        }
        d.deserialize_any(V)
    }
}

/// A deserializer that only records the field list a derived struct asks for.
struct Fields<'a>(&'a Cell<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;
impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("introspection")
    }
}
impl std::error::Error for Stop {}
impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for Fields<'_> {
    type Error = Stop;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.set(fields);
        Err(Stop)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let cell = Cell::new(&[][..]);
    let _ = T::deserialize(Fields(&cell));
    cell.get()
}

/// The file structs whose keys are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Top,
    Include,
    Listener,
    ListenerTls,
    Issuer,
    Cognito,
    Jwks,
    Upstream,
    Health,
    Timeouts,
    UpstreamTls,
    Role,
    Statement,
    Mapping,
    Rule,
    Route,
    Match,
    Auth,
    Scopes,
    Cors,
    IdentityHeaders,
    Limits,
    Server,
    TokenCache,
    Connections,
    IssuerClaims,
    SignedIdentity,
    SigningKey,
}

fn fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Top => fields_of::<file::FileConfig>(),
        Kind::Include => fields_of::<file::IncludeFile>(),
        Kind::Listener => fields_of::<file::ListenerFile>(),
        Kind::ListenerTls => fields_of::<file::ListenerTlsFile>(),
        Kind::Issuer => fields_of::<file::IssuerFile>(),
        Kind::Cognito => fields_of::<file::CognitoFile>(),
        Kind::Jwks => fields_of::<file::JwksFile>(),
        Kind::Upstream => fields_of::<file::UpstreamFile>(),
        Kind::Health => fields_of::<file::HealthCheckFile>(),
        Kind::Timeouts => fields_of::<file::TimeoutsFile>(),
        Kind::UpstreamTls => fields_of::<file::UpstreamTlsFile>(),
        Kind::Role => fields_of::<file::RoleFile>(),
        Kind::Statement => fields_of::<file::StatementFile>(),
        Kind::Mapping => fields_of::<file::RoleMappingFile>(),
        Kind::Rule => fields_of::<file::RuleFile>(),
        Kind::Route => fields_of::<file::RouteFile>(),
        Kind::Match => fields_of::<file::MatchFile>(),
        Kind::Auth => fields_of::<file::AuthFile>(),
        Kind::Scopes => fields_of::<file::ScopesFile>(),
        Kind::Cors => fields_of::<file::CorsFile>(),
        Kind::IdentityHeaders => fields_of::<file::IdentityHeadersFile>(),
        Kind::Limits => fields_of::<file::LimitsFile>(),
        Kind::Server => fields_of::<file::ServerFile>(),
        Kind::TokenCache => fields_of::<file::TokenCacheFile>(),
        Kind::Connections => fields_of::<file::ConnectionsFile>(),
        Kind::SignedIdentity => fields_of::<file::SignedIdentityFile>(),
        Kind::SigningKey => fields_of::<file::SigningKeyFile>(),
        Kind::IssuerClaims => fields_of::<file::IssuerClaimsFile>(),
    }
}

/// What a known key holds.
enum Child {
    Struct(Kind),
    SeqOf(Kind),
    MapOf(Kind),
    Leaf,
}

fn child(kind: Kind, key: &str) -> Child {
    use Child::{Leaf, MapOf, SeqOf, Struct};
    match (kind, key) {
        (Kind::Top, "listen") => SeqOf(Kind::Listener),
        (Kind::Top | Kind::Include, "issuers") => MapOf(Kind::Issuer),
        (Kind::Top | Kind::Include, "upstreams") => MapOf(Kind::Upstream),
        (Kind::Top | Kind::Include, "roles") => MapOf(Kind::Role),
        (Kind::Top | Kind::Include, "routes") => SeqOf(Kind::Route),
        (Kind::Top, "role_mapping") => Struct(Kind::Mapping),
        (Kind::Top, "identity_headers") => Struct(Kind::IdentityHeaders),
        (Kind::Top, "limits") => Struct(Kind::Limits),
        (Kind::Top, "signed_identity") => Struct(Kind::SignedIdentity),
        (Kind::SignedIdentity, "keys") => SeqOf(Kind::SigningKey),
        (Kind::Top, "server") => Struct(Kind::Server),
        (Kind::Server, "token_cache") => Struct(Kind::TokenCache),
        (Kind::Server, "connections") => Struct(Kind::Connections),
        (Kind::Listener, "tls") => Struct(Kind::ListenerTls),
        (Kind::Issuer, "cognito") => Struct(Kind::Cognito),
        (Kind::Issuer, "jwks") => Struct(Kind::Jwks),
        (Kind::Issuer, "claims") => Struct(Kind::IssuerClaims),
        (Kind::Upstream, "health_check") => Struct(Kind::Health),
        (Kind::Upstream, "timeouts") => Struct(Kind::Timeouts),
        (Kind::Upstream, "tls") => Struct(Kind::UpstreamTls),
        (Kind::Role, "allow" | "deny") => SeqOf(Kind::Statement),
        (Kind::Mapping, "rules") => SeqOf(Kind::Rule),
        (Kind::Route, "match") => Struct(Kind::Match),
        (Kind::Route, "auth") => Struct(Kind::Auth),
        (Kind::Route, "cors") => Struct(Kind::Cors),
        (Kind::Auth, "scopes") => Struct(Kind::Scopes),
        _ => Leaf,
    }
}

fn walk(node: &Node, kind: Kind, file: &str, path: &str, out: &mut Vec<Diagnostic>) {
    let Node::Map(entries) = node else {
        return;
    };
    let known = fields(kind);
    for (key, value) in entries {
        let here = key_path(path, &key.value);
        if !known.contains(&key.value.as_str()) {
            let loc = key.referenced;
            let span = Span {
                file: file.to_owned(),
                line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
                col: u32::try_from(loc.column()).unwrap_or(u32::MAX),
                len: u32::try_from(loc.span().len().max(1)).unwrap_or(1),
            };
            let help = suggest(&key.value, known.iter().copied()).or_else(|| {
                let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                Some(format!("expected one of {}", list.join(", ")))
            });
            out.push(
                Diagnostic::new(span, here, format!("unknown key `{}`", key.value))
                    .label("not part of the policy format here")
                    .maybe_help(help),
            );
            continue;
        }
        match (child(kind, &key.value), &value.value) {
            (Child::Struct(k), v) => walk(v, k, file, &here, out),
            (Child::SeqOf(k), Node::Seq(items)) => {
                for (i, item) in items.iter().enumerate() {
                    walk(&item.value, k, file, &format!("{here}[{i}]"), out);
                }
            }
            (Child::MapOf(k), Node::Map(items)) => {
                for (name, item) in items {
                    walk(&item.value, k, file, &format!("{here}.{}", name.value), out);
                }
            }
            _ => {}
        }
    }
}

/// The path of key `key` in the mapping at `path` (`upstreams` + `app` → `upstreams.app`).
fn key_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The key path (`upstreams.app.targets`) of the key or value at (line, col), if any.
fn path_at(node: &Node, path: &str, line: u64, col: u64) -> Option<String> {
    let here = |l: &serde_saphyr::Location| l.line() == line && l.column() == col;
    match node {
        Node::Map(entries) => entries.iter().find_map(|(k, v)| {
            let p = key_path(path, &k.value);
            if here(&k.referenced) || here(&v.referenced) {
                return Some(p);
            }
            path_at(&v.value, &p, line, col)
        }),
        Node::Seq(items) => items.iter().enumerate().find_map(|(i, v)| {
            let p = format!("{path}[{i}]");
            if here(&v.referenced) {
                return Some(p);
            }
            path_at(&v.value, &p, line, col)
        }),
        Node::Scalar => None,
    }
}

/// A file read as a plain tree of spanned keys: for the sweeps that run when it does not
/// deserialize.
pub(crate) struct Tree {
    root: Node,
    /// An included file (`IncludeFile`) rather than a main one.
    include: bool,
}

impl Tree {
    /// `None` when the text is not even a YAML tree.
    pub(crate) fn parse(text: &str, include: bool) -> Option<Self> {
        let root = serde_saphyr::from_str::<Node>(text).ok()?;
        Some(Self { root, include })
    }

    fn kind(&self) -> Kind {
        if self.include {
            Kind::Include
        } else {
            Kind::Top
        }
    }

    /// Every unknown key of the file.
    pub(crate) fn unknown_keys(&self, file: &str) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        walk(&self.root, self.kind(), file, "", &mut out);
        out
    }

    /// The key path at a position, for errors serde reports without one.
    pub(crate) fn key_at(&self, line: u32, col: u32) -> Option<String> {
        path_at(&self.root, "", u64::from(line), u64::from(col))
    }

    /// The key path of the mapping a "missing key" error at (line, col) is about: serde places
    /// it at the mapping's start or at one of its keys.
    pub(crate) fn mapping_at(&self, line: u32, col: u32) -> Option<String> {
        mapping_at(&self.root, "", u64::from(line), u64::from(col))
    }

    /// The list and map sections at the top of the file (`routes`, `roles`, …) and where their
    /// elements start, in file order.
    pub(crate) fn sections(&self) -> Vec<Section> {
        let Node::Map(entries) = &self.root else {
            return Vec::new();
        };
        let mut out: Vec<Section> = Vec::new();
        for (i, (key, value)) in entries.iter().enumerate() {
            let end = entries
                .get(i + 1)
                .map_or(u64::MAX, |(k, _)| k.referenced.line().saturating_sub(1));
            let (elements, list) = match (child(self.kind(), &key.value), &value.value) {
                (Child::SeqOf(_), Node::Seq(items)) => {
                    (items.iter().map(|v| at(&v.referenced)).collect(), true)
                }
                (Child::MapOf(_), Node::Map(items)) => (
                    items.iter().map(|(k, _)| at(&k.referenced)).collect(),
                    false,
                ),
                _ => continue,
            };
            out.push(Section {
                key: at(&key.referenced),
                value: at(&value.referenced),
                end,
                elements,
                list,
            });
        }
        out
    }

    /// Every key and scalar with its position and nesting depth: two texts with the same
    /// shape read as the same tree at the same places.
    pub(crate) fn shape(&self) -> Vec<Mark> {
        let mut out = Vec::new();
        marks(&self.root, 0, &mut out);
        out
    }
}

/// A (line, column) position, 1-based.
pub(crate) type Pos = (u64, u64);

fn at(l: &serde_saphyr::Location) -> Pos {
    (l.line(), l.column())
}

/// A top-level list or map section.
pub(crate) struct Section {
    /// Where its key is.
    pub key: Pos,
    /// Where its value starts (`[` or `{` for flow style).
    pub value: Pos,
    /// The last line it can reach: the line before the next top-level key.
    pub end: u64,
    /// Where each element starts: a list item's node, or a map entry's key.
    pub elements: Vec<Pos>,
    /// A list (else a map).
    pub list: bool,
}

/// A key or scalar: its position and depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub line: u64,
    pub col: u64,
    pub depth: u32,
}

fn marks(node: &Node, depth: u32, out: &mut Vec<Mark>) {
    let value = |v: &serde_saphyr::Spanned<Node>, out: &mut Vec<Mark>| match &v.value {
        Node::Scalar => out.push(mark(&v.referenced, depth)),
        inner => marks(inner, depth + 1, out),
    };
    match node {
        Node::Map(entries) => {
            for (k, v) in entries {
                out.push(mark(&k.referenced, depth));
                value(v, out);
            }
        }
        Node::Seq(items) => {
            for v in items {
                value(v, out);
            }
        }
        Node::Scalar => {}
    }
}

fn mark(l: &serde_saphyr::Location, depth: u32) -> Mark {
    Mark {
        line: l.line(),
        col: l.column(),
        depth,
    }
}

fn mapping_at(node: &Node, path: &str, line: u64, col: u64) -> Option<String> {
    let here = |l: &serde_saphyr::Location| l.line() == line && l.column() == col;
    match node {
        Node::Map(entries) => {
            for (k, v) in entries {
                let p = key_path(path, &k.value);
                if here(&v.referenced) && matches!(v.value, Node::Map(_)) {
                    return Some(p);
                }
                if let Some(found) = mapping_at(&v.value, &p, line, col) {
                    return Some(found);
                }
            }
            entries
                .iter()
                .any(|(k, _)| here(&k.referenced))
                .then(|| path.to_owned())
        }
        Node::Seq(items) => items.iter().enumerate().find_map(|(i, v)| {
            let p = format!("{path}[{i}]");
            if here(&v.referenced) && matches!(v.value, Node::Map(_)) {
                return Some(p);
            }
            mapping_at(&v.value, &p, line, col)
        }),
        Node::Scalar => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn introspection_finds_the_fields() {
        assert!(fields(Kind::Top).contains(&"routes"));
        assert!(fields(Kind::Route).contains(&"match"));
        assert_eq!(fields(Kind::Scopes), ["any_of", "all_of"]);
    }

    #[test]
    fn finds_the_key_of_a_position() {
        let text = "version: 1\nupstreams:\n  app:\n    targets: 127.0.0.1:80\nroutes:\n  - match: { path: 5 }\n";
        let tree = Tree::parse(text, false).unwrap();
        let key_at = |line, col| tree.key_at(line, col);
        assert_eq!(key_at(4, 14).as_deref(), Some("upstreams.app.targets"));
        assert_eq!(key_at(6, 20).as_deref(), Some("routes[0].match.path"));
        assert_eq!(key_at(1, 1).as_deref(), Some("version"));
        assert_eq!(key_at(9, 9), None);
    }

    #[test]
    fn examples_use_only_known_keys() {
        // The examples use every nested struct key at least once, so a missing entry in
        // `child` would show up here as a false "unknown key".
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for (name, include) in [
            ("demo.yaml", false),
            ("shop.yaml", false),
            ("multi-issuer.yaml", false),
            ("parts/shop-catalog.yaml", true),
        ] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let found = Tree::parse(&text, include).unwrap().unknown_keys(name);
            assert!(found.is_empty(), "{name}: {found:?}");
        }
    }

    #[test]
    fn finds_the_mapping_a_missing_key_belongs_to() {
        let text = "upstreams:\n  app: { targets: [] }\nroutes:\n  - name: x\n    match: { path: /a }\n    public: true\n";
        let tree = Tree::parse(text, false).unwrap();
        // At the mapping's start, at one of its keys, and at a top-level key.
        assert_eq!(tree.mapping_at(4, 5).as_deref(), Some("routes[0]"));
        assert_eq!(tree.mapping_at(6, 5).as_deref(), Some("routes[0]"));
        assert_eq!(tree.mapping_at(3, 1).as_deref(), Some(""));
        assert_eq!(tree.mapping_at(2, 8).as_deref(), Some("upstreams.app"));
    }

    #[test]
    fn reports_every_unknown_key() {
        let text = "version: 1\nrotues: []\nroles:\n  r: { alow: [] }\nroutes:\n  - match: { path: /a, mehtods: [GET] }\n    upstream: x\n";
        let found: Vec<(u32, u32, String)> = Tree::parse(text, false)
            .unwrap()
            .unknown_keys("f.yaml")
            .into_iter()
            .map(|d| (d.span.line, d.span.col, d.message))
            .collect();
        assert_eq!(
            found,
            [
                (2, 1, "unknown key `rotues`".to_owned()),
                (4, 8, "unknown key `alow`".to_owned()),
                (6, 24, "unknown key `mehtods`".to_owned()),
            ]
        );
    }
}
