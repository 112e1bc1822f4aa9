//! The verified identity as backend headers: names parsed once per configuration, values
//! built per request into one buffer.
//!
//! Two name tables use the same builder: the configuration's identity headers (built-ins under
//! the prefix, then the global claim mappings) and each route's own claim headers.
//!
//! Header values are visible ASCII. Text that is not (a user named `josé`) is still carried:
//! - a string value is sent as an RFC 8187 `ext-value`, `UTF-8''jos%C3%A9`, whenever it holds
//!   a non-ASCII character or itself starts with `UTF-8''` (so that prefix always means
//!   "percent-decode the rest as UTF-8");
//! - JSON (arrays, objects) escapes non-ASCII characters as `\uXXXX`, which every JSON parser
//!   reads back.
//!
//! Control characters (CR, LF, NUL, DEL…) in a string value are refused: no identity has them,
//! and the request gets `400 identity_unrepresentable`.
//!
//! An array of strings is written in its header's encoding ([`ArrayEncoding`]). An element the
//! encoding cannot carry so that a reader gets back exactly the same elements (a `,` in a
//! comma-separated list, non-ASCII in a structured-field string) refuses the request the same
//! way: elements never merge and are never dropped.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pingora::http::RequestHeader;
use serde_json::Value;

use super::is_header_text;
use crate::config::IdentitySettings;
use poolgate_policies::model::{ArrayEncoding, BUILTIN_IDENTITY_HEADERS};

/// A verified identity, borrowed, in the shape the backend headers need.
#[derive(Debug, Clone, Copy)]
pub struct IdentityView<'a> {
    /// The verified `iss` (the issuer's URL).
    pub iss: &'a str,
    pub sub: &'a str,
    pub username: Option<&'a str>,
    pub groups: &'a [String],
    pub roles: &'a [&'a str],
    pub scopes: &'a [String],
    pub client_id: Option<&'a str>,
    pub token_use: &'a str,
    pub claims: Option<&'a dyn poolgate_policies::Claims>,
}

/// A verified value that cannot travel as a header value; the request is refused rather
/// than sent with a truncated or altered identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity value for `{header}` cannot be sent as a header")]
pub struct HeaderError {
    pub header: String,
}

/// Header names parsed once, each addressed by its slot, with how its arrays are written.
#[derive(Debug, Clone, Default)]
pub struct SlotNames {
    names: Box<[HeaderName]>,
    /// The same names as bytes: what pingora's `insert_header` takes without copying.
    wire: Box<[Bytes]>,
    encodings: Box<[ArrayEncoding]>,
}

impl SlotNames {
    fn new(names: Vec<(HeaderName, ArrayEncoding)>) -> Self {
        let wire = names
            .iter()
            .map(|(n, _)| Bytes::copy_from_slice(n.as_str().as_bytes()))
            .collect();
        let encodings = names.iter().map(|(_, e)| *e).collect();
        Self {
            names: names.into_iter().map(|(n, _)| n).collect(),
            wire,
            encodings,
        }
    }

    fn name(&self, slot: u16) -> &str {
        self.names
            .get(usize::from(slot))
            .map_or("", HeaderName::as_str)
    }

    fn encoding(&self, slot: u16) -> ArrayEncoding {
        self.encodings
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default()
    }
}

impl AsRef<SlotNames> for SlotNames {
    fn as_ref(&self) -> &SlotNames {
        self
    }
}

/// A header name from configuration text (lower-cased), or the error naming it.
fn parse_name(full: String) -> Result<HeaderName, HeaderError> {
    let full = full.to_ascii_lowercase();
    HeaderName::from_bytes(full.as_bytes()).map_err(|_| HeaderError { header: full })
}

/// The identity header names of one configuration: the built-ins first (`Builtin`), then the
/// claim mappings in order.
#[derive(Debug, Clone)]
pub struct IdentityNames {
    slots: SlotNames,
    /// The built-ins sent (their bits, see [`Builtin`]).
    send: u8,
    /// `(claim, slot, replaces)`: a present claim replaces the built-in header of the same
    /// name (its bit in `replaces`, see [`Builtin`]), which is then not built at all.
    claims: Vec<(String, u16, u8)>,
}

impl AsRef<SlotNames> for IdentityNames {
    fn as_ref(&self) -> &SlotNames {
        &self.slots
    }
}

/// Slots and bits of the built-in identity headers.
struct Builtin;

impl Builtin {
    /// Name suffixes, by slot.
    const SUFFIXES: [&str; 8] = BUILTIN_IDENTITY_HEADERS;
    const ISSUER: u16 = 0;
    const SUB: u16 = 1;
    const USERNAME: u16 = 2;
    const GROUPS: u16 = 3;
    const ROLES: u16 = 4;
    const SCOPES: u16 = 5;
    const CLIENT_ID: u16 = 6;
    const TOKEN_USE: u16 = 7;

    /// The replacement bit of a built-in slot (0 for any other slot).
    fn bit(slot: u16) -> u8 {
        1u8.checked_shl(u32::from(slot)).unwrap_or(0)
    }
}

/// The slot the next name pushed onto `names` gets.
fn next_slot<T>(names: &[T], header: &HeaderName) -> Result<u16, HeaderError> {
    u16::try_from(names.len()).map_err(|_| HeaderError {
        header: header.as_str().to_owned(),
    })
}

impl IdentityNames {
    /// Whether the headers depend on the request's roles as well as on the identity (only when
    /// the roles header is sent): such headers are built per request, not kept.
    pub fn depend_on_roles(&self) -> bool {
        self.send & Builtin::bit(Builtin::ROLES) != 0
    }

    /// Names under `settings.prefix`; a prefix or suffix that cannot make a header name is an error.
    pub fn new(settings: &IdentitySettings) -> Result<Self, HeaderError> {
        let name = |suffix: &str| {
            Ok((
                parse_name(format!("{}{suffix}", settings.prefix))?,
                settings.encoding_of(suffix),
            ))
        };
        let mut names = Builtin::SUFFIXES
            .iter()
            .map(|s| name(s))
            .collect::<Result<Vec<_>, _>>()?;
        let send = Builtin::SUFFIXES
            .iter()
            .enumerate()
            .filter(|(_, s)| settings.send.iter().any(|n| n == *s))
            .fold(0, |bits, (slot, _)| bits | Builtin::bit(slot as u16));
        let mut claims = Vec::with_capacity(settings.claims.len());
        for (suffix, claim) in &settings.claims {
            let (header, encoding) = name(suffix)?;
            let replaces = names
                .iter()
                .take(Builtin::SUFFIXES.len())
                .position(|(n, _)| *n == header)
                .map_or(0, |slot| Builtin::bit(slot as u16));
            let slot = next_slot(&names, &header)?;
            names.push((header, encoding));
            claims.push((claim.clone(), slot, replaces));
        }
        Ok(Self {
            slots: SlotNames::new(names),
            send,
            claims,
        })
    }
}

/// One route's own claim headers (`headers:` on the route, full names), parsed once.
#[derive(Debug, Clone, Default)]
pub struct RouteHeaderNames {
    slots: SlotNames,
    /// `(claim, slot)`, in the route's order.
    claims: Box<[(String, u16)]>,
}

impl AsRef<SlotNames> for RouteHeaderNames {
    fn as_ref(&self) -> &SlotNames {
        &self.slots
    }
}

impl RouteHeaderNames {
    /// From the route's `(header, claim)` pairs, arrays written in `encoding`; a name that
    /// cannot be a header is an error.
    pub fn new(pairs: &[(String, String)], encoding: ArrayEncoding) -> Result<Self, HeaderError> {
        let mut names = Vec::with_capacity(pairs.len());
        let mut claims = Vec::with_capacity(pairs.len());
        for (header, claim) in pairs {
            let header = parse_name(header.clone())?;
            claims.push((claim.clone(), next_slot(&names, &header)?));
            names.push((header, encoding));
        }
        Ok(Self {
            slots: SlotNames::new(names),
            claims: claims.into_boxed_slice(),
        })
    }
}

/// Headers built for an identity: every value a slice of one buffer (one allocation, however
/// many headers), each with the slot of its name. Ready to send: setting one on a request
/// counts a reference, so an identity's headers are built once and kept with it.
#[derive(Debug)]
pub struct IdentityHeaders {
    entries: Box<[(u16, HeaderValue)]>,
}

impl IdentityHeaders {
    /// `(name, value)` pairs, in order.
    pub fn pairs<'a>(
        &'a self,
        names: &'a impl AsRef<SlotNames>,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let names = names.as_ref();
        self.entries
            .iter()
            .map(move |(slot, value)| (names.name(*slot), value.as_bytes()))
    }

    /// Sets every header on `req`, replacing any of the same name. `names` must be the table
    /// these were built with.
    pub fn apply(
        &self,
        req: &mut RequestHeader,
        names: &impl AsRef<SlotNames>,
    ) -> Result<(), HeaderError> {
        let names = names.as_ref();
        for (slot, value) in &self.entries {
            let refused = || HeaderError {
                header: names.name(*slot).to_owned(),
            };
            let name = names.wire.get(usize::from(*slot)).ok_or_else(refused)?;
            req.insert_header(name.clone(), value.clone())
                .map_err(|_| refused())?;
        }
        Ok(())
    }
}

/// Writes header values into one buffer.
struct Builder<'n> {
    names: &'n SlotNames,
    buf: Vec<u8>,
    spans: Vec<(u16, u32)>,
}

impl<'n> Builder<'n> {
    fn new(names: &'n SlotNames, bytes: usize, headers: usize) -> Self {
        Self {
            names,
            buf: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(headers),
        }
    }

    fn finish(self) -> Result<IdentityHeaders, HeaderError> {
        let values = Bytes::from(self.buf);
        let mut start = 0;
        let entries = self
            .spans
            .iter()
            .map(|&(slot, end)| {
                let (from, to) = (start, end as usize);
                start = to;
                // Checked as header text when written; `http` checks again and cannot refuse it.
                values
                    .get(from..to)
                    .and_then(|_| HeaderValue::from_maybe_shared(values.slice(from..to)).ok())
                    .map(|v| (slot, v))
                    .ok_or_else(|| HeaderError {
                        header: self.names.name(slot).to_owned(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(IdentityHeaders { entries })
    }

    fn refused(&self, slot: u16) -> HeaderError {
        HeaderError {
            header: self.names.name(slot).to_owned(),
        }
    }

    /// Ends the value written since the last one: it must be header text.
    fn end(&mut self, slot: u16, start: usize) -> Result<(), HeaderError> {
        let value = self.buf.get(start..).ok_or_else(|| self.refused(slot))?;
        if !is_header_text(value) {
            return Err(self.refused(slot));
        }
        let end = u32::try_from(self.buf.len()).map_err(|_| self.refused(slot))?;
        self.spans.push((slot, end));
        Ok(())
    }

    /// A string: as it is when it is header text, else as an RFC 8187 `ext-value`.
    fn text(&mut self, slot: u16, text: &str) -> Result<(), HeaderError> {
        let start = self.buf.len();
        if text.is_ascii() && !needs_ext_value(text) {
            self.buf.extend_from_slice(text.as_bytes());
        } else if text.chars().any(|c| c.is_control() && c != '\t') {
            return Err(self.refused(slot));
        } else {
            self.buf.extend_from_slice(EXT_VALUE_PREFIX.as_bytes());
            for piece in utf8_percent_encode(text, NOT_ATTR_CHAR) {
                self.buf.extend_from_slice(piece.as_bytes());
            }
        }
        self.end(slot, start)
    }

    /// An array of strings in the slot's encoding.
    fn array<'s>(
        &mut self,
        slot: u16,
        items: impl Iterator<Item = &'s str>,
    ) -> Result<(), HeaderError> {
        let start = self.buf.len();
        match self.names.encoding(slot) {
            ArrayEncoding::Json => {
                self.buf.push(b'[');
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        self.buf.push(b',');
                    }
                    json_string(&mut self.buf, item);
                }
                self.buf.push(b']');
            }
            ArrayEncoding::Csv => {
                let mut empty = true;
                for (i, item) in items.enumerate() {
                    empty = false;
                    if !is_csv_element(item) {
                        return Err(self.refused(slot));
                    }
                    if i > 0 {
                        self.buf.push(b',');
                    }
                    self.buf.extend_from_slice(item.as_bytes());
                }
                // As in sf-list: a reader would split an empty value into one empty element.
                if empty {
                    return Ok(());
                }
            }
            ArrayEncoding::SfList => {
                let mut list = String::new();
                let mut out = sfv::RefListSerializer::new(&mut list);
                for item in items {
                    out = out
                        .bare_item(&sfv::RefBareItem::String(item))
                        .map_err(|_| self.refused(slot))?;
                }
                // RFC 8941: an empty list is not serialized; the header is left out.
                if list.is_empty() {
                    return Ok(());
                }
                self.buf.extend_from_slice(list.as_bytes());
            }
        }
        self.end(slot, start)
    }

    /// A claim. In a JSON slot: a string raw, anything else as JSON. In a list slot (csv,
    /// sf-list) the header is read as a list, so a string is a one-element list (a custom
    /// attribute `"users,admins"` must not read as two groups), numbers and booleans are
    /// their JSON text, and objects or arrays of anything but strings are refused.
    fn claim(&mut self, slot: u16, value: &Value) -> Result<(), HeaderError> {
        let list_slot = self.names.encoding(slot) != ArrayEncoding::Json;
        match value {
            Value::String(s) if list_slot => self.array(slot, std::iter::once(s.as_str())),
            Value::String(s) => self.text(slot, s),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                self.array(slot, items.iter().filter_map(Value::as_str))
            }
            Value::Array(_) | Value::Object(_) if list_slot => Err(self.refused(slot)),
            other => {
                let start = self.buf.len();
                if serde_json::to_writer(&mut self.buf, other).is_err() {
                    return Err(self.refused(slot));
                }
                escape_non_ascii(&mut self.buf, start);
                self.end(slot, start)
            }
        }
    }
}

/// `text` as a JSON string. Text with nothing to escape (the usual group, role and scope name)
/// is copied between quotes; anything else goes through `serde_json`.
fn json_string(buf: &mut Vec<u8>, text: &str) {
    let plain = text.bytes().fold(true, |ok, b| {
        ok & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    });
    if plain {
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
    } else {
        let start = buf.len();
        if serde_json::to_writer(&mut *buf, text).is_err() {
            // Writing to a Vec cannot fail; should it, the value is refused as not header text.
            buf.push(0);
        }
        escape_non_ascii(buf, start);
    }
}

/// Whether `item` is one element of a comma-separated list that every reader splits back to
/// itself: not empty, visible ASCII with inner spaces, and no `,` (the separator) or `"`
/// (which opens a quoted string in HTTP's list syntax). Readers trim white space around
/// elements, so none may start or end with it.
fn is_csv_element(item: &str) -> bool {
    let b = item.as_bytes();
    let visible = |c: &u8| (0x21..0x7f).contains(c) && *c != b',' && *c != b'"';
    b.first().is_some_and(visible)
        && b.last().is_some_and(visible)
        && b.iter().all(|c| *c == b' ' || visible(c))
}

/// The marker of an RFC 8187 `ext-value` in UTF-8 (no language tag).
const EXT_VALUE_PREFIX: &str = "UTF-8''";

/// Whether an ASCII string must still be sent as an ext-value, so that a decoder cannot read
/// it as something else: it looks like an ext-value itself (`charset'language'…` in any case,
/// `utf-8''%61dmin` or `ISO-8859-1'en'x`), or it has white space at either end, which header
/// parsers trim (`" admin"` would arrive as `admin`).
fn needs_ext_value(text: &str) -> bool {
    let b = text.as_bytes();
    let edge_space = |c: Option<&u8>| matches!(c, Some(b' ' | b'\t'));
    if edge_space(b.first()) || edge_space(b.last()) {
        return true;
    }
    // RFC 8187: charset (mime-charsetc+), `'`, an optional language tag, `'`.
    let charset_len = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || b"!#$%&+-^_`{}~".contains(c))
        .count();
    if charset_len == 0 || b.get(charset_len) != Some(&b'\'') {
        return false;
    }
    let rest = b.get(charset_len + 1..).unwrap_or_default();
    let lang_len = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
        .count();
    rest.get(lang_len) == Some(&b'\'')
}

/// Everything but RFC 8187's `attr-char` is percent-encoded.
const NOT_ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Rewrites the JSON text in `buf[start..]` with every non-ASCII character (only possible
/// inside a JSON string) and DEL as `\uXXXX` escapes (surrogate pairs above U+FFFF).
fn escape_non_ascii(buf: &mut Vec<u8>, start: usize) {
    let tail = buf.get(start..).unwrap_or_default();
    if tail.iter().all(|b| *b < 0x7f) {
        return;
    }
    let Ok(text) = std::str::from_utf8(tail).map(str::to_owned) else {
        return; // serde_json writes UTF-8; anything else is refused as not header text
    };
    buf.truncate(start);
    let mut units = [0u16; 2];
    for c in text.chars() {
        if c.is_ascii() && c != '\u{7f}' {
            buf.push(c as u8);
            continue;
        }
        for unit in c.encode_utf16(&mut units).iter() {
            buf.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
        }
    }
}

/// The identity headers for `id` that the configuration sends, in a stable order. Arrays are
/// written in each header's encoding, intact; a string claim is sent raw, any other claim as
/// JSON.
pub fn identity_headers(
    id: &IdentityView<'_>,
    names: &IdentityNames,
) -> Result<IdentityHeaders, HeaderError> {
    let mut b = Builder::new(&names.slots, 128, 8 + names.claims.len());
    // Claim headers first: a present claim replaces the built-in header of its name, which is
    // then not built (by default `sub`, `issuer` and `groups` come from claims).
    let mut replaced = 0u8;
    for (claim, slot, bit) in &names.claims {
        let Some(value) = id.claims.and_then(|c| c.claim(claim)) else {
            continue; // an absent claim is an absent header (the built-in one stays)
        };
        b.claim(*slot, value)?;
        replaced |= bit;
    }
    let wanted = |slot: u16| (names.send & !replaced) & Builtin::bit(slot) != 0;
    if wanted(Builtin::ISSUER) {
        b.text(Builtin::ISSUER, id.iss)?;
    }
    if wanted(Builtin::SUB) {
        b.text(Builtin::SUB, id.sub)?;
    }
    if let Some(username) = id.username.filter(|_| wanted(Builtin::USERNAME)) {
        b.text(Builtin::USERNAME, username)?;
    }
    if wanted(Builtin::GROUPS) {
        b.array(Builtin::GROUPS, id.groups.iter().map(String::as_str))?;
    }
    if wanted(Builtin::ROLES) {
        b.array(Builtin::ROLES, id.roles.iter().copied())?;
    }
    if wanted(Builtin::SCOPES) {
        b.array(Builtin::SCOPES, id.scopes.iter().map(String::as_str))?;
    }
    if let Some(client_id) = id.client_id.filter(|_| wanted(Builtin::CLIENT_ID)) {
        b.text(Builtin::CLIENT_ID, client_id)?;
    }
    if wanted(Builtin::TOKEN_USE) {
        b.text(Builtin::TOKEN_USE, id.token_use)?;
    }
    b.finish()
}

/// A route's own claim headers, encoded as the identity's claim headers are; an absent claim
/// gives no header (the gate removes any client-sent header of that name regardless). `None`
/// when the route has none to send.
pub fn route_claim_headers(
    names: &RouteHeaderNames,
    claims: &dyn poolgate_policies::Claims,
) -> Result<Option<IdentityHeaders>, HeaderError> {
    if names.claims.is_empty() {
        return Ok(None);
    }
    let mut b = Builder::new(&names.slots, 64, names.claims.len());
    for (claim, slot) in &names.claims {
        if let Some(value) = claims.claim(claim) {
            b.claim(*slot, value)?;
        }
    }
    b.finish().map(Some)
}
