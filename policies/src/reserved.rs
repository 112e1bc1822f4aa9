//! Request headers poolgate owns on what it forwards: a route may not set them from a claim,
//! and the proxy removes or replaces whatever a client sent under their names.
//!
//! Names are compared lower-case with `_` read as `-`, the way CGI-style backends (WSGI, Rack,
//! PHP) fold them: `X_Auth_Sub` reaches such a backend as `X-Auth-Sub`.

/// Client headers that some backends or frameworks treat as overriding the path, the method or
/// the client's origin: the policy judged none of them, so none is forwarded.
pub const OVERRIDE_HEADERS: [&str; 23] = [
    "x-original-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-rewrite-url",
    "x-original-method",
    "x-original-host",
    "x-host",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-url-scheme",
    "front-end-https",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-server",
];

/// The headers poolgate sets itself: the forwarding headers and the request id. Their `-`
/// spelling is replaced (or appended to); any spelling with `_` is removed.
pub const SET_HEADERS: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    REQUEST_ID,
];

/// The prefix of the ALB-compatible identity headers (`x-amzn-oidc-data`, `-identity`,
/// `-accesstoken`): removed from every request, so only poolgate's own reach a backend that
/// trusts them.
pub const SIGNED_IDENTITY_PREFIX: &str = "x-amzn-oidc-";

/// The request id poolgate sets on every forwarded request.
pub const REQUEST_ID: &str = "x-request-id";

fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

/// Whether `name` starts with `prefix` once both are folded.
pub fn folded_starts_with(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(a, b)| fold(a) == fold(b))
}

/// Whether `a` and `b` are the same header once folded.
pub fn folded_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && folded_starts_with(a, b)
}

/// Why `name` is poolgate's own, given the identity-header prefix; `None` if it is not.
pub fn owned(name: &str, identity_prefix: &str) -> Option<&'static str> {
    if folded_starts_with(name, identity_prefix) {
        Some("it starts with the identity-header prefix")
    } else if folded_starts_with(name, SIGNED_IDENTITY_PREFIX) {
        Some("poolgate removes every `x-amzn-oidc-` header and sets its own signed identity")
    } else if folded_eq(name, REQUEST_ID) {
        Some("poolgate sets the request id")
    } else if SET_HEADERS.iter().any(|h| folded_eq(name, h)) {
        Some("poolgate sets the forwarding headers")
    } else if OVERRIDE_HEADERS.iter().any(|h| folded_eq(name, h)) {
        Some(
            "poolgate removes it from every request (backends read it as the path, method, host, scheme or client)",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_names_in_every_spelling() {
        for name in [
            "x-auth-sub",
            "X_AUTH-groups",
            "x-request-id",
            "x_request_id",
            "x-forwarded-for",
            "X-Original-URL",
            "forwarded",
        ] {
            assert!(owned(name, "x-auth-").is_some(), "{name}");
        }
        for name in ["x-email", "x-user-groups", "x-authz", "x-requestid"] {
            assert_eq!(owned(name, "x-auth-"), None, "{name}");
        }
        assert!(owned("x-id-sub", "x-id-").is_some());
        assert!(owned("X_Amzn_Oidc_Data", "x-auth-").is_some());
    }
}
