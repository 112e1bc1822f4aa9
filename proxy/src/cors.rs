//! CORS for routes that configure it: preflights answered by the proxy without a token, and
//! the `Access-Control-*` headers added to the backend's answer.

use bytes::Bytes;
use poolgate_policies::Cors;

use crate::respond::Answer;

fn origin_allowed<'a>(c: &Cors, origin: Option<&'a str>) -> Option<&'a str> {
    let origin = origin?;
    c.allow_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        .then_some(origin)
}

fn allow_origin_value(c: &Cors, origin: &str) -> String {
    // `*` cannot be combined with credentials; echo the origin instead.
    if c.allow_origins.iter().any(|o| o == "*") && !c.allow_credentials {
        "*".to_owned()
    } else {
        origin.to_owned()
    }
}

/// The answer to a preflight, or `None` when the origin, method or headers are not allowed.
pub fn preflight(
    c: &Cors,
    origin: Option<&str>,
    method: &str,
    request_headers: Option<&str>,
    request_id: &str,
) -> Option<Answer> {
    let origin = origin_allowed(c, origin)?;
    let method_ok = c
        .allow_methods
        .iter()
        .any(|m| m == "*" || m.eq_ignore_ascii_case(method));
    if !method_ok {
        return None;
    }
    let requested = request_headers
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty());
    for h in requested {
        if !c
            .allow_headers
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(h))
        {
            return None;
        }
    }
    let mut headers = vec![
        ("access-control-allow-origin", allow_origin_value(c, origin)),
        ("access-control-allow-methods", c.allow_methods.join(", ")),
        ("vary", "Origin".to_owned()),
        ("x-request-id", request_id.to_owned()),
        ("content-length", "0".to_owned()),
    ];
    if !c.allow_headers.is_empty() {
        headers.push(("access-control-allow-headers", c.allow_headers.join(", ")));
    }
    if c.allow_credentials {
        headers.push(("access-control-allow-credentials", "true".to_owned()));
    }
    if let Some(age) = c.max_age {
        headers.push(("access-control-max-age", age.as_secs().to_string()));
    }
    Some(Answer {
        status: 204,
        headers,
        body: Bytes::new(),
    })
}

/// Headers added to an actual (non-preflight) answer for an allowed origin.
pub fn response_headers(c: &Cors, origin: Option<&str>) -> Vec<(&'static str, String)> {
    let Some(origin) = origin_allowed(c, origin) else {
        // The answer depends on `Origin` either way: a shared cache must keep them apart.
        return vec![("vary", "Origin".to_owned())];
    };
    let mut out = vec![
        ("access-control-allow-origin", allow_origin_value(c, origin)),
        ("vary", "Origin".to_owned()),
    ];
    if c.allow_credentials {
        out.push(("access-control-allow-credentials", "true".to_owned()));
    }
    if !c.expose_headers.is_empty() {
        out.push(("access-control-expose-headers", c.expose_headers.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cors() -> Cors {
        Cors {
            allow_origins: vec!["https://app.example.com".into()],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["authorization".into(), "content-type".into()],
            expose_headers: vec!["x-request-id".into()],
            allow_credentials: true,
            max_age: Some(Duration::from_secs(600)),
        }
    }

    #[test]
    fn preflight_allows_listed_origin_method_and_headers() {
        let a = preflight(
            &cors(),
            Some("https://app.example.com"),
            "POST",
            Some("Authorization, Content-Type"),
            "r",
        )
        .unwrap();
        assert_eq!(a.status, 204);
        let get = |n: &str| {
            a.headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("access-control-allow-origin").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            get("access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(get("access-control-max-age").as_deref(), Some("600"));
    }

    #[test]
    fn preflight_refuses_other_origin_method_or_header() {
        assert!(preflight(&cors(), Some("https://evil.example"), "GET", None, "r").is_none());
        assert!(preflight(&cors(), None, "GET", None, "r").is_none());
        assert!(
            preflight(
                &cors(),
                Some("https://app.example.com"),
                "DELETE",
                None,
                "r"
            )
            .is_none()
        );
        assert!(
            preflight(
                &cors(),
                Some("https://app.example.com"),
                "GET",
                Some("x-custom"),
                "r"
            )
            .is_none()
        );
    }

    #[test]
    fn response_headers_allow_only_known_origins_and_always_vary() {
        assert_eq!(
            response_headers(&cors(), Some("https://evil.example")),
            vec![("vary", "Origin".to_owned())]
        );
        let h = response_headers(&cors(), Some("https://app.example.com"));
        assert!(
            h.iter()
                .any(|(k, v)| *k == "access-control-expose-headers" && v == "x-request-id")
        );
    }
}
