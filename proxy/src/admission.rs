//! Admission: normalise, match, verify, map roles, decide — and what a refusal becomes.
//!
//! Called from the gate's `request_filter`; returns a verdict or a [`Denial`], never writes.

use std::sync::Arc;

use http::HeaderValue;
use pingora::http::RequestHeader;
use poolgate_authorizer::{AuthError, Identity};
use poolgate_policies as pol;

use crate::cors;
use crate::headers::{self, IdentityHeaders, IdentityView};
use crate::respond::{self, Denial};
use crate::state::GateState;
use crate::upstreams::Upstream;

/// What `request_filter` settles before anything is forwarded.
// Returned once per request and moved straight into the context: boxing the large variant
// would add an allocation to every forwarded request to save a copy on the rare preflight.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Verdict {
    Forward(Admitted),
    /// Answered by the proxy itself: a CORS preflight (`cors_preflight`) or a public key of
    /// the signed identity at its `publish_path` (`signed_identity_keys`).
    Answered {
        answer: respond::Answer,
        reason: &'static str,
    },
}

/// The verified identity's headers for the backend.
#[derive(Default)]
pub(crate) struct BackendHeaders {
    pub(crate) identity: Option<Arc<IdentityHeaders>>,
    /// The route's own claim headers.
    pub(crate) route: Option<IdentityHeaders>,
    /// The ALB-compatible signed identity, on routes that send it.
    pub(crate) signed: Option<crate::signed_identity::SignedHeaders>,
}

impl BackendHeaders {
    /// Sets both sets on `req`, the route's last; `route` is the index they were built for, in
    /// the `state` they were built with.
    pub(crate) fn apply(
        &self,
        req: &mut RequestHeader,
        state: &GateState,
        route: Option<usize>,
    ) -> Result<(), headers::HeaderError> {
        if let Some(identity) = &self.identity {
            identity.apply(req, &state.identity_names)?;
        }
        if let (Some(headers), Some(names)) =
            (&self.route, route.and_then(|i| state.route_headers.get(i)))
        {
            headers.apply(req, names)?;
        }
        if let Some(signed) = &self.signed {
            signed.apply(req).map_err(|_| headers::HeaderError {
                header: "x-amzn-oidc-data".to_owned(),
            })?;
        }
        Ok(())
    }
}

pub(crate) struct Admitted {
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) reason: &'static str,
    pub(crate) identity: Option<Arc<Identity>>,
    /// Headers for the backend (none without an identity).
    pub(crate) backend_headers: BackendHeaders,
    pub(crate) rewritten_target: Option<http::Uri>,
    /// The judged authority, for the backend's `Host` and `X-Forwarded-Host`.
    pub(crate) host: HeaderValue,
    pub(crate) cors_response: Vec<(&'static str, String)>,
}

/// The request's authority, parsed strictly, and the value to forward for it (the bytes sent
/// when they were already canonical). Every request needs one: RFC 9112 §3.2 makes a missing
/// Host a 400 for HTTP/1.1, and an HTTP/1.0 request without one would reach the backend's
/// default virtual host, which no host-bound route judged.
fn authority(req: &RequestHeader) -> Result<(pol::Authority<'_>, HeaderValue), Denial> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let raw = match (hosts.next(), hosts.next()) {
        (Some(h), None) => Some((h.as_bytes(), Some(h))),
        (Some(_), Some(_)) => {
            return Err(Denial::BadRequest {
                reason: "multiple_hosts",
            });
        }
        (None, _) => req.uri.authority().map(|a| (a.as_str().as_bytes(), None)),
    };
    let Some((bytes, header)) = raw else {
        return Err(Denial::BadRequest {
            reason: "missing_host",
        });
    };
    let parsed =
        pol::Authority::parse(bytes).map_err(|e| Denial::BadRequest { reason: e.code() })?;
    let forward = match header {
        Some(h) if parsed.is_canonical() => h.clone(),
        _ => HeaderValue::from_str(&parsed.to_string()).map_err(|_| Denial::BadRequest {
            reason: "host_invalid",
        })?,
    };
    Ok((parsed, forward))
}

/// Normalise, match, verify, map roles, decide.
/// `matched` receives the route's index as soon as one matches, so denials are counted by route.
pub(crate) async fn admit(
    state: &GateState,
    req: &RequestHeader,
    request_id: &str,
    matched: &mut Option<usize>,
) -> Result<Verdict, Denial> {
    if headers::request_head_size(req) > state.max_request_header_bytes {
        return Err(Denial::HeaderTooLarge);
    }
    // Judge the bytes that would be sent upstream, not pingora's parsed `Uri`: a target that is
    // not origin-form (`GET admin/users`) parses as `/` but would be forwarded verbatim.
    let raw_target = std::str::from_utf8(req.raw_path()).map_err(|_| Denial::BadPath {
        reason: "path_not_utf8".to_owned(),
    })?;
    let absolute_form = req.uri.scheme().is_some() || req.uri.authority().is_some();
    let (raw_path, query) = if absolute_form {
        (req.uri.path(), req.uri.query())
    } else {
        pol::split_query(raw_target)
    };
    let path = pol::normalize_path(raw_path).map_err(|e| Denial::BadPath {
        reason: path_error_code(&e).to_owned(),
    })?;
    if !is_canonical_method(req.method.as_str()) {
        return Err(Denial::BadRequest {
            reason: "method_case",
        });
    }
    let (host, forward_host) = authority(req)?;
    if let Some(answer) = state
        .signed_identity
        .as_ref()
        .and_then(|s| s.published(&req.method, &path))
    {
        return Ok(Verdict::Answered {
            answer,
            reason: "signed_identity_keys",
        });
    }
    let header_str = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let preflight_method = (req.method == http::Method::OPTIONS)
        .then(|| header_str("access-control-request-method"))
        .flatten();
    let policy = &state.policy;
    // A preflight is matched as the request it announces, but only a route with CORS settings
    // answers it at the edge; anywhere else the OPTIONS request is judged as what it is.
    let announced = preflight_method
        .and_then(|acrm| policy.match_route(&host, acrm, &path).map(|m| (acrm, m)))
        .filter(|(_, m)| m.route.cors.is_some());
    let preflight_method = announced.as_ref().map(|(acrm, _)| *acrm);
    let method = preflight_method.unwrap_or(req.method.as_str());
    let m = match announced {
        Some((_, m)) => m,
        None => policy
            .match_route(&host, method, &path)
            .ok_or(Denial::NoRoute)?,
    };
    let route = m.route;
    *matched = Some(m.index);
    // Another spelling of the path would have been judged by a more specific route.
    if policy.shadowing_route(&host, method, &path, &m).is_some() {
        return Err(Denial::BadRequest {
            reason: "path_ambiguous",
        });
    }
    let origin = header_str("origin");
    if let (Some(acrm), Some(c)) = (preflight_method, &route.cors) {
        let answer = cors::preflight(
            c,
            origin,
            acrm,
            header_str("access-control-request-headers"),
            request_id,
        )
        .ok_or_else(|| Denial::Forbidden {
            reason: "cors_not_allowed".to_owned(),
        })?;
        return Ok(Verdict::Answered {
            answer,
            reason: "cors_preflight",
        });
    }
    let upstream = state
        .upstreams
        .get(&route.upstream)
        .cloned()
        .ok_or(Denial::NoHealthyUpstream)?;
    let rewritten_target = forward_target(raw_target, absolute_form, &path, query)?;
    let cors_response = route
        .cors
        .as_ref()
        .map(|c| cors::response_headers(c, origin))
        .unwrap_or_default();
    let admitted = |reason: &'static str,
                    identity: Option<Arc<Identity>>,
                    backend_headers: BackendHeaders| Admitted {
        upstream: upstream.clone(),
        reason,
        identity,
        backend_headers,
        rewritten_target: rewritten_target.clone(),
        host: forward_host.clone(),
        cors_response: cors_response.clone(),
    };
    if route.public {
        return Ok(Verdict::Forward(admitted(
            "public",
            None,
            BackendHeaders::default(),
        )));
    }
    let mut authorization = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (first, second) = (authorization.next(), authorization.next());
    if second.is_some() {
        return Err(unusable_credentials("more than one Authorization header"));
    }
    // A credential that is present but unusable is refused: it never falls back to guest.
    let token = first
        .map(|v| {
            headers::bearer_token(Some(v.as_bytes())).ok_or_else(|| {
                unusable_credentials("the Authorization header is not a Bearer token")
            })
        })
        .transpose()?;
    let Some(token) = token else {
        // No token: only the guest roles can allow; otherwise authenticating is the way forward.
        let d = policy.decide(&m, method, &path, None);
        return if d.allowed {
            Ok(Verdict::Forward(admitted(
                d.reason.code(),
                None,
                BackendHeaders::default(),
            )))
        } else {
            Err(Denial::MissingToken)
        };
    };
    let Some(verifier) = state.token_verifier() else {
        return Err(Denial::InvalidToken {
            code: "no_verifier".to_owned(),
            description: "no token issuer is configured".to_owned(),
        });
    };
    // Built with the routes; should the two ever disagree, refuse rather than accept any token.
    let requirement = state
        .requirements
        .get(m.index)
        .ok_or_else(|| Denial::Forbidden {
            reason: "route_requirement_missing".to_owned(),
        })?;
    // Cache hits (nearly every request) are answered without a boxed future.
    let identity = match verifier.verify_without_fetch(token, requirement) {
        Some(answer) => answer,
        None => verifier.verify_after_fetch(token, requirement).await,
    }
    .map_err(auth_denial)?;
    let principal = pol::Principal {
        issuer: &identity.issuer,
        token_use: Some(identity.token_use.as_str()),
        groups: &identity.groups,
        scopes: &identity.scopes,
        has_groups_claim: identity.claimed.groups,
        has_scopes_claim: identity.claimed.scopes,
        claims: &IdentityClaims(&identity.claims),
    };
    let d = policy.decide(&m, method, &path, Some(&principal));
    if d.allowed {
        let mut headers = backend_identity_headers(state, m.index, &identity, &d.roles)
            .map_err(|_| Denial::IdentityUnrepresentable)?;
        if let (true, Some(signer)) = (route.signed_identity, &state.signed_identity) {
            // A signing failure is the key's, not the client's; it cannot happen with a key
            // that loaded, and is refused like an identity that cannot be sent.
            headers.signed = Some(
                crate::kept::signed_headers(
                    state,
                    signer,
                    token,
                    &identity,
                    crate::unix_now(),
                    route.forward_token,
                )
                .map_err(|_| Denial::IdentityUnrepresentable)?,
            );
        }
        Ok(Verdict::Forward(admitted(
            d.reason.code(),
            Some(identity.clone()),
            headers,
        )))
    } else {
        Err(reason_denial(d.reason, route))
    }
}

fn unusable_credentials(description: &str) -> Denial {
    Denial::InvalidToken {
        code: "invalid_request".to_owned(),
        description: description.to_owned(),
    }
}

/// The request target the backend receives: `None` keeps the client's, which is then exactly the
/// normalised origin-form path and query that were judged. Anything else (a rewritten path, an
/// absolute-form target) is rebuilt as origin-form from what was judged.
fn forward_target(
    raw_target: &str,
    absolute_form: bool,
    path: &str,
    query: Option<&str>,
) -> Result<Option<http::Uri>, Denial> {
    let unchanged = match query {
        Some(q) => {
            raw_target
                .strip_prefix(path)
                .and_then(|r| r.strip_prefix('?'))
                == Some(q)
        }
        None => raw_target == path,
    };
    if unchanged && !absolute_form {
        return Ok(None);
    }
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    // Fail closed: a target that cannot be rebuilt is refused, never forwarded as sent.
    target.parse().map(Some).map_err(|_| Denial::BadPath {
        reason: "invalid_target".to_owned(),
    })
}

/// Methods are case-sensitive, but many backends upper-case them: `delete` would slip past a
/// `DELETE` deny statement and then run as one. A known method in any other casing is refused.
fn is_canonical_method(method: &str) -> bool {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    !KNOWN
        .iter()
        .any(|k| k.eq_ignore_ascii_case(method) && *k != method)
}

/// A verification failure as the client's answer.
pub fn auth_denial(e: AuthError) -> Denial {
    match e {
        AuthError::Missing => Denial::MissingToken,
        AuthError::KeysUnavailable => Denial::KeysUnavailable,
        other => Denial::InvalidToken {
            code: other.code().to_owned(),
            description: other.to_string(),
        },
    }
}

/// A policy refusal as the client's answer.
pub fn reason_denial(reason: pol::Reason, route: &pol::Route) -> Denial {
    match reason {
        pol::Reason::NoRoute => Denial::NoRoute,
        pol::Reason::NoToken => Denial::MissingToken,
        pol::Reason::WrongIssuer | pol::Reason::WrongTokenUse => Denial::InvalidToken {
            code: reason.code().to_owned(),
            description: reason.code().replace('_', " "),
        },
        pol::Reason::Scope => Denial::InsufficientScope {
            scopes: route
                .auth
                .scopes_any_of
                .iter()
                .chain(&route.auth.scopes_all_of)
                .cloned()
                .collect(),
        },
        other => Denial::Forbidden {
            reason: other.code().to_owned(),
        },
    }
}

/// Stable short code of a path refusal.
pub fn path_error_code(e: &pol::PathError) -> &'static str {
    use pol::PathError as P;
    match e {
        P::NotOriginForm => "path_not_origin_form",
        P::Backslash => "path_backslash",
        P::EncodedSlash => "path_encoded_slash",
        P::Control => "path_control_char",
        P::BadEscape => "path_bad_escape",
        P::InvalidUtf8 => "path_invalid_utf8",
        P::NonAscii => "path_non_ascii",
        P::InvalidChar(_) => "path_invalid_char",
        P::Semicolon => "path_semicolon",
        P::EncodedDotSegment => "path_encoded_dot_segment",
        P::AboveRoot => "path_above_root",
        P::Fragment => "path_fragment",
        P::EncodedTooDeep => "path_encoded_too_deep",
    }
}

/// The identity headers for an admitted request with a verified identity.
pub(crate) fn backend_identity_headers(
    state: &GateState,
    route: usize,
    id: &Identity,
    roles: &[&str],
) -> Result<BackendHeaders, headers::HeaderError> {
    Ok(BackendHeaders {
        identity: Some(crate::kept::identity_headers(state, id, roles)?),
        route: match state.route_headers.get(route) {
            Some(names) => headers::route_claim_headers(names, &IdentityClaims(&id.claims))?,
            None => None,
        },
        signed: None,
    })
}

/// What the identity headers are built from.
pub(crate) fn identity_view<'a>(
    id: &'a Identity,
    roles: &'a [&'a str],
    claims: &'a IdentityClaims<'a>,
) -> IdentityView<'a> {
    IdentityView {
        iss: &id.iss,
        sub: &id.sub,
        username: id.username.as_deref(),
        groups: &id.groups,
        roles,
        scopes: &id.scopes,
        client_id: id.client_id.as_deref(),
        token_use: id.token_use.as_str(),
        claims: Some(claims),
    }
}

/// The policy engine's view of a verified identity's claims.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdentityClaims<'a>(pub(crate) &'a poolgate_authorizer::Claims);

impl pol::Claims for IdentityClaims<'_> {
    fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_failures_map_to_401_or_503() {
        assert_eq!(auth_denial(AuthError::Missing), Denial::MissingToken);
        assert_eq!(auth_denial(AuthError::KeysUnavailable).status(), 503);
        // Every other failure is the client's token: a 401 naming the check that failed.
        for e in AuthError::ALL
            .into_iter()
            .filter(|e| !matches!(e, AuthError::Missing | AuthError::KeysUnavailable))
        {
            let d = auth_denial(e);
            assert_eq!(d.status(), 401, "{e:?}");
            assert_eq!(d.reason(), e.code(), "{e:?}");
        }
    }

    #[test]
    fn path_errors_have_distinct_codes() {
        let errors = [
            pol::normalize_path("x").unwrap_err(),
            pol::normalize_path("/a\\b").unwrap_err(),
            pol::normalize_path("/a%2fb").unwrap_err(),
            pol::normalize_path("/../x").unwrap_err(),
            pol::normalize_path("/a;b").unwrap_err(),
        ];
        let codes: std::collections::HashSet<_> = errors.iter().map(path_error_code).collect();
        assert_eq!(codes.len(), errors.len(), "{codes:?}");
        assert!(codes.iter().all(|c| c.starts_with("path_")));
    }
}
