//! The one place a denial becomes an HTTP answer.
//!
//! | denial | status | extra headers |
//! |---|---|---|
//! | path cannot be normalised, bad request | 400 | |
//! | no bearer token | 401 | `WWW-Authenticate: Bearer realm="…"` |
//! | token present but invalid | 401 | `WWW-Authenticate: Bearer realm="…", error="invalid_token", error_description="…"` |
//! | not allowed | 403 | |
//! | scopes missing | 403 | `WWW-Authenticate: Bearer realm="…", error="insufficient_scope", scope="…"` |
//! | no route | 404 | |
//! | request body stalled | 408 | |
//! | request head too large | 431 | |
//! | keys unavailable, no healthy target, too many connections | 503 | `Retry-After` |
//! | upstream refused / broke | 502 | |
//! | upstream timed out | 504 | |
//!
//! Every body is JSON: `{"error", "reason", "request_id"}`; `reason` is a stable short code
//! (also the `reason` label of the request counter).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::Serialize;

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Why a request is not forwarded (or failed upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The path cannot be normalised safely (`reason` is the normaliser's code).
    BadPath {
        reason: String,
    },
    /// Something else about the request is unacceptable.
    BadRequest {
        reason: &'static str,
    },
    /// The verified identity holds a value that cannot be sent as a header.
    IdentityUnrepresentable,
    NoRoute,
    /// The route needs a token and none was sent.
    MissingToken,
    /// A token was sent and failed verification (`code` is the verifier's short code).
    InvalidToken {
        code: String,
        description: String,
    },
    /// Verified, but the policy does not allow it (`reason` names the rule or its absence).
    Forbidden {
        reason: String,
    },
    /// Verified, but the token lacks the scopes the route needs.
    InsufficientScope {
        scopes: Vec<String>,
    },
    HeaderTooLarge,
    /// The client stopped sending its request body for longer than the body timeout.
    BodyTimeout,
    /// The process holds as many client connections as it may.
    ConnectionLimit,
    /// The issuer's keys could not be obtained: fail closed, ask to retry.
    KeysUnavailable,
    NoHealthyUpstream,
    UpstreamUnreachable,
    UpstreamTimeout,
}

impl Denial {
    pub fn status(&self) -> u16 {
        match self {
            Denial::BadPath { .. }
            | Denial::BadRequest { .. }
            | Denial::IdentityUnrepresentable => 400,
            Denial::MissingToken | Denial::InvalidToken { .. } => 401,
            Denial::Forbidden { .. } | Denial::InsufficientScope { .. } => 403,
            Denial::NoRoute => 404,
            Denial::BodyTimeout => 408,
            Denial::HeaderTooLarge => 431,
            Denial::KeysUnavailable | Denial::NoHealthyUpstream | Denial::ConnectionLimit => 503,
            Denial::UpstreamUnreachable => 502,
            Denial::UpstreamTimeout => 504,
        }
    }

    /// Stable short code for logs, metrics and the JSON body.
    pub fn reason(&self) -> &str {
        match self {
            Denial::BadPath { reason } => reason,
            Denial::BadRequest { reason } => reason,
            Denial::IdentityUnrepresentable => "identity_unrepresentable",
            Denial::NoRoute => "no_route",
            Denial::MissingToken => "missing_token",
            Denial::InvalidToken { code, .. } => code,
            Denial::Forbidden { reason } => reason,
            Denial::InsufficientScope { .. } => "insufficient_scope",
            Denial::HeaderTooLarge => "header_too_large",
            Denial::BodyTimeout => "body_timeout",
            Denial::ConnectionLimit => "connection_limit",
            Denial::KeysUnavailable => "keys_unavailable",
            Denial::NoHealthyUpstream => "no_healthy_upstream",
            Denial::UpstreamUnreachable => "upstream_unreachable",
            Denial::UpstreamTimeout => "upstream_timeout",
        }
    }

    fn error_word(&self) -> &'static str {
        match self.status() {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            408 => "request_timeout",
            431 => "request_header_fields_too_large",
            502 => "bad_gateway",
            503 => "service_unavailable",
            504 => "gateway_timeout",
            _ => "error",
        }
    }
}

/// A rendered answer, independent of pingora so it can be checked in unit tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    reason: &'a str,
    request_id: &'a str,
}

/// Renders `denial` for the client.
pub fn render(denial: &Denial, request_id: &str, realm: &str) -> Answer {
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("cache-control", "no-store".to_owned()),
        ("x-request-id", request_id.to_owned()),
    ];
    let realm = quoted(realm);
    match denial {
        Denial::MissingToken => {
            headers.push(("www-authenticate", format!("Bearer realm=\"{realm}\"")));
        }
        Denial::InvalidToken { description, .. } => headers.push((
            "www-authenticate",
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                quoted(description)
            ),
        )),
        Denial::InsufficientScope { scopes } => headers.push((
            "www-authenticate",
            format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
                quoted(&scopes.join(" "))
            ),
        )),
        Denial::KeysUnavailable | Denial::NoHealthyUpstream | Denial::ConnectionLimit => {
            headers.push(("retry-after", RETRY_AFTER_SECS.to_string()));
        }
        _ => {}
    }
    let body = serde_json::to_vec(&Body {
        error: denial.error_word(),
        reason: denial.reason(),
        request_id,
    })
    .unwrap_or_default();
    headers.push(("content-length", body.len().to_string()));
    Answer {
        status: denial.status(),
        headers,
        body: Bytes::from(body),
    }
}

/// Text safe inside an RFC 7230 quoted-string of a challenge: visible ASCII without `"` and `\`.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

/// `answer` as HTTP/1.1 bytes that close the connection, for a client refused before pingora
/// has a session for it.
pub fn http1_bytes(answer: &Answer) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", answer.status);
    for (name, value) in &answer.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer.body);
    bytes
}

/// Writes `answer` to the client. Errors mean the client is gone; nothing else to do.
pub async fn send(session: &mut Session, answer: Answer) -> pingora::Result<()> {
    let mut head = ResponseHeader::build(answer.status, Some(answer.headers.len()))?;
    for (name, value) in answer.headers {
        head.insert_header(name, value)?;
    }
    session.set_keepalive(None);
    session.write_response_header(Box::new(head), false).await?;
    session.write_response_body(Some(answer.body), true).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
