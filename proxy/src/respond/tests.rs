use super::*;

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn body(a: &Answer) -> serde_json::Value {
    serde_json::from_slice(&a.body).unwrap()
}

#[test]
fn missing_token_is_a_plain_bearer_challenge() {
    let a = render(&Denial::MissingToken, "rid1", "shop");
    assert_eq!(a.status, 401);
    assert_eq!(
        header(&a, "www-authenticate"),
        Some("Bearer realm=\"shop\"")
    );
    assert_eq!(
        body(&a),
        serde_json::json!({"error": "unauthorized", "reason": "missing_token", "request_id": "rid1"})
    );
    assert_eq!(
        header(&a, "content-length"),
        Some(a.body.len().to_string().as_str())
    );
}

#[test]
fn invalid_token_carries_rfc6750_error() {
    let d = Denial::InvalidToken {
        code: "expired".into(),
        description: "token expired \"5 min\" ago\n".into(),
    };
    let a = render(&d, "r", "poolgate");
    assert_eq!(a.status, 401);
    assert_eq!(
        header(&a, "www-authenticate"),
        Some(
            "Bearer realm=\"poolgate\", error=\"invalid_token\", error_description=\"token expired '5 min' ago?\""
        )
    );
    assert_eq!(body(&a)["reason"], "expired");
}

#[test]
fn insufficient_scope_is_403_with_scope() {
    let a = render(
        &Denial::InsufficientScope {
            scopes: vec!["orders/read".into(), "orders/write".into()],
        },
        "r",
        "p",
    );
    assert_eq!(a.status, 403);
    assert_eq!(
        header(&a, "www-authenticate"),
        Some(
            "Bearer realm=\"p\", error=\"insufficient_scope\", scope=\"orders/read orders/write\""
        )
    );
}

#[test]
fn statuses_and_retry_after() {
    let cases = [
        (
            Denial::BadPath {
                reason: "dot_segment".into(),
            },
            400,
            "bad_request",
        ),
        (Denial::NoRoute, 404, "not_found"),
        (
            Denial::Forbidden {
                reason: "no_statement".into(),
            },
            403,
            "forbidden",
        ),
        (
            Denial::HeaderTooLarge,
            431,
            "request_header_fields_too_large",
        ),
        (Denial::KeysUnavailable, 503, "service_unavailable"),
        (Denial::NoHealthyUpstream, 503, "service_unavailable"),
        (Denial::UpstreamUnreachable, 502, "bad_gateway"),
        (Denial::UpstreamTimeout, 504, "gateway_timeout"),
    ];
    for (d, status, word) in cases {
        let a = render(&d, "r", "p");
        assert_eq!(a.status, status, "{d:?}");
        assert_eq!(body(&a)["error"], word, "{d:?}");
        assert_eq!(body(&a)["reason"], d.reason(), "{d:?}");
        assert_eq!(header(&a, "retry-after").is_some(), status == 503, "{d:?}");
        assert_eq!(header(&a, "www-authenticate"), None, "{d:?}");
        assert_eq!(header(&a, "x-request-id"), Some("r"));
    }
}

#[test]
fn a_kept_request_id_with_quotes_and_backslashes_stays_valid_json() {
    // `"` and `\` are visible ASCII, so a client's request id may carry them.
    let id = r#"a"b\c"#;
    let a = render(&Denial::NoRoute, id, "shop");
    assert_eq!(body(&a)["request_id"], id);
    assert_eq!(header(&a, "x-request-id"), Some(id));
}
