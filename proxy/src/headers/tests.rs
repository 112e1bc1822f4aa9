use super::*;
use crate::config::IdentitySettings;
use poolgate_policies::model::ArrayEncoding;
use serde_json::Value;

fn req(headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/x?y=1", None).unwrap();
    for (n, v) in headers {
        r.append_header(n.to_string(), *v).unwrap();
    }
    r
}

fn names(r: &RequestHeader) -> Vec<String> {
    let mut v: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
    v.sort();
    v
}

#[test]
fn strips_prefixed_headers_in_every_spelling() {
    let mut r = req(&[
        ("X-Auth-Sub", "mallory"),
        ("x-auth-groups", "admins"),
        ("X_AUTH_ROLES", "admin"),
        ("x_auth-mixed", "1"),
        ("x-authx", "kept: no dash after prefix"),
        ("x-other", "kept"),
    ]);
    let removed = strip_identity_headers(&mut r, "X-Auth-", &[]);
    assert_eq!(removed, 4);
    assert_eq!(names(&r), vec!["x-authx", "x-other"]);
}

#[test]
fn underscored_prefix_variant_is_stripped() {
    let mut r = req(&[("x_auth_sub", "mallory"), ("x_auth_sub", "again")]);
    assert_eq!(strip_identity_headers(&mut r, "x-auth-", &[]), 1);
    assert!(r.headers.is_empty());
}

#[test]
fn claim_headers_and_override_headers_are_stripped_in_every_spelling() {
    let mut r = req(&[
        ("X_Tenant_Id", "other-tenant"),
        ("x-tenant-id", "other-tenant"),
        ("X-Original-URL", "/admin"),
        ("x_http_method_override", "DELETE"),
        ("Forwarded", "for=1.2.3.4"),
        ("x-tenant-idx", "kept"),
        ("x-amzn-oidc-data", "eyJ..."),
        ("X_Amzn_Oidc_Identity", "root"),
        ("x-amzn-oidc-accesstoken", "eyJ..."),
    ]);
    let claim_headers = vec![("X-Tenant-Id".to_owned(), "custom:tenant".to_owned())];
    assert_eq!(strip_identity_headers(&mut r, "x-auth-", &claim_headers), 8);
    assert_eq!(names(&r), vec!["x-tenant-idx"]);

    // The forwarding headers poolgate sets: the `-` spelling stays (it is replaced or appended
    // to later), any `_` spelling goes; so do client-IP headers.
    let mut r = req(&[
        ("X-Forwarded-For", "10.0.0.1"),
        ("x_forwarded_for", "7.7.7.7"),
        ("X_Forwarded_Proto", "https"),
        ("x-forwarded_host", "evil.example"),
        ("x-client-ip", "7.7.7.7"),
        ("True-Client-IP", "7.7.7.7"),
        ("x_real_ip", "7.7.7.7"),
        ("CF-Connecting-IP", "7.7.7.7"),
        ("fastly_client_ip", "7.7.7.7"),
    ]);
    assert_eq!(strip_identity_headers(&mut r, "x-auth-", &[]), 8);
    assert_eq!(names(&r), vec!["x-forwarded-for"]);
    // The request id's `_` spelling, and the host, scheme and URI overrides some frameworks read.
    let mut r = req(&[
        ("x-request-id", "kept-for-now"),
        ("x_request_id", "attacker"),
        ("X-Original-Host", "admin.example.com"),
        ("x-host", "admin.example.com"),
        ("X-Forwarded-Scheme", "https"),
        ("x-forwarded-ssl", "on"),
        ("X-Original-URI", "/admin"),
        ("x_forwarded_uri", "/admin"),
        ("X-Original-Method", "DELETE"),
        ("front-end-https", "on"),
        ("x-url-scheme", "https"),
    ]);
    assert_eq!(strip_identity_headers(&mut r, "x-auth-", &[]), 10);
    assert_eq!(names(&r), vec!["x-request-id"]);
}

fn view<'a>(
    groups: &'a [String],
    claims: Option<&'a dyn poolgate_policies::Claims>,
) -> IdentityView<'a> {
    IdentityView {
        iss: "https://idp.example/shop",
        sub: "1b2c-uuid",
        username: Some("alice"),
        groups,
        roles: &["reader", "owner"],
        scopes: &[],
        client_id: Some("client1"),
        token_use: "access",
        claims,
    }
}

fn all_builtins() -> IdentitySettings {
    IdentitySettings {
        send: poolgate_policies::model::BUILTIN_IDENTITY_HEADERS
            .map(str::to_owned)
            .to_vec(),
        ..IdentitySettings::default()
    }
}

fn values(h: &IdentityHeaders, names: &IdentityNames) -> Vec<(String, String)> {
    h.pairs(names)
        .map(|(k, v)| (k.to_owned(), String::from_utf8(v.to_vec()).unwrap()))
        .collect()
}

#[test]
fn identity_headers_keep_arrays_intact() {
    let groups = vec!["admins".to_owned(), "read ers".to_owned()];
    let names = IdentityNames::new(&all_builtins()).unwrap();
    let h = identity_headers(&view(&groups, None), &names).unwrap();
    let get = |n: &str| {
        h.pairs(&names)
            .find(|(k, _)| *k == n)
            .map(|(_, v)| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(get("x-auth-sub").as_deref(), Some("1b2c-uuid"));
    assert_eq!(
        get("x-auth-groups").as_deref(),
        Some(r#"["admins","read ers"]"#)
    );
    assert_eq!(get("x-auth-scopes").as_deref(), Some("[]"));
    assert_eq!(
        get("x-auth-roles").as_deref(),
        Some(r#"["reader","owner"]"#)
    );
    assert_eq!(get("x-auth-client-id").as_deref(), Some("client1"));
    assert_eq!(get("x-auth-token-use").as_deref(), Some("access"));
    assert_eq!(
        get("x-auth-issuer").as_deref(),
        Some("https://idp.example/shop")
    );
}

#[test]
fn by_default_only_sub_issuer_and_groups_are_sent() {
    let groups = vec!["admins".to_owned()];
    let names = IdentityNames::new(&IdentitySettings::default()).unwrap();
    let h = identity_headers(&view(&groups, None), &names).unwrap();
    assert_eq!(
        values(&h, &names),
        [
            (
                "x-auth-issuer".to_owned(),
                "https://idp.example/shop".to_owned()
            ),
            ("x-auth-sub".to_owned(), "1b2c-uuid".to_owned()),
            ("x-auth-groups".to_owned(), r#"["admins"]"#.to_owned()),
        ]
    );
}

fn encoded(encoding: ArrayEncoding, groups: &[&str]) -> Result<Option<String>, HeaderError> {
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    let settings = IdentitySettings {
        send: vec!["groups".into()],
        encoding,
        ..IdentitySettings::default()
    };
    let names = IdentityNames::new(&settings).unwrap();
    let h = identity_headers(&view(&groups, None), &names)?;
    Ok(values(&h, &names).pop().map(|(_, v)| v))
}

#[test]
fn arrays_in_each_encoding_split_back_to_the_same_elements() {
    use ArrayEncoding::{Csv, Json, SfList};
    let ok = |e, g: &[&str]| encoded(e, g).unwrap();
    assert_eq!(
        ok(Csv, &["users", "analysts"]).as_deref(),
        Some("users,analysts")
    );
    assert_eq!(ok(Csv, &["a b", "c:d/e"]).as_deref(), Some("a b,c:d/e"));
    // An empty list is no header in either list encoding: an empty value would split into
    // one empty element.
    assert_eq!(ok(Csv, &[]), None);
    assert_eq!(
        ok(SfList, &["users", "say \"hi\"", "back\\slash", ""]).as_deref(),
        Some(r#""users", "say \"hi\"", "back\\slash", """#)
    );
    // RFC 8941: an empty list is not serialized at all.
    assert_eq!(ok(SfList, &[]), None);
    assert_eq!(ok(Json, &["a,b"]).as_deref(), Some(r#"["a,b"]"#));
    // What a reader of each encoding could not split back exactly is refused.
    for bad in [
        &["a,b"][..],
        &["users", ""],
        &[" padded"],
        &["padded "],
        &["quo\"te"],
        &["caf\u{e9}"],
        &["tab\there"],
    ] {
        assert!(encoded(Csv, bad).is_err(), "csv {bad:?}");
    }
    for bad in [&["caf\u{e9}"][..], &["new\nline"], &["del\u{7f}"]] {
        assert!(encoded(SfList, bad).is_err(), "sf-list {bad:?}");
    }
}

#[test]
fn sf_lists_parse_back_with_an_rfc_8941_parser() {
    let groups = ["users", "a, b", "say \"hi\"", "x\\y", "(not) a ;param"];
    let value = encoded(ArrayEncoding::SfList, &groups).unwrap().unwrap();
    let parsed = sfv::Parser::parse_list(value.as_bytes()).unwrap();
    let back: Vec<&str> = parsed
        .iter()
        .map(|e| match e {
            sfv::ListEntry::Item(i) => i.bare_item.as_str().unwrap(),
            sfv::ListEntry::InnerList(_) => panic!("inner list in {value}"),
        })
        .collect();
    assert_eq!(back, groups);
}

#[test]
fn claim_arrays_take_the_encoding_and_other_arrays_only_json() {
    let mut claims = serde_json::Map::new();
    claims.insert("perms".into(), serde_json::json!(["read:a", "write:b"]));
    claims.insert("mixed".into(), serde_json::json!(["a", 1]));
    claims.insert("tier".into(), serde_json::json!(3));
    claims.insert("joined".into(), serde_json::json!("users,admins"));
    claims.insert("plain".into(), serde_json::json!("gold"));
    claims.insert("object".into(), serde_json::json!({"a": "b"}));
    let settings = |claim: &str| IdentitySettings {
        send: Vec::new(),
        encoding: ArrayEncoding::Csv,
        claims: vec![("x".into(), claim.into())],
        ..IdentitySettings::default()
    };
    let build = |claim: &str| {
        let names = IdentityNames::new(&settings(claim)).unwrap();
        identity_headers(&view(&[], Some(&claims)), &names).map(|h| values(&h, &names))
    };
    assert_eq!(
        build("perms").unwrap(),
        [("x-auth-x".to_owned(), "read:a,write:b".to_owned())]
    );
    assert_eq!(
        build("tier").unwrap(),
        [("x-auth-x".to_owned(), "3".to_owned())]
    );
    assert!(build("mixed").is_err());
    // A string claim in a list header is a one-element list: a comma in it is refused, never
    // read as two elements; an object has no list form.
    assert!(build("joined").is_err());
    assert_eq!(
        build("plain").unwrap(),
        [("x-auth-x".to_owned(), "gold".to_owned())]
    );
    assert!(build("object").is_err());
    // A route's own headers take the route's encoding.
    let names = RouteHeaderNames::new(
        &[("x-perms".to_owned(), "perms".to_owned())],
        ArrayEncoding::SfList,
    )
    .unwrap();
    let h = route_claim_headers(&names, &claims).unwrap().unwrap();
    assert_eq!(
        h.pairs(&names)
            .map(|(k, v)| (k.to_owned(), String::from_utf8(v.to_vec()).unwrap()))
            .collect::<Vec<_>>(),
        [("x-perms".to_owned(), r#""read:a", "write:b""#.to_owned())]
    );
}

#[test]
fn claim_headers_map_strings_raw_and_others_as_json() {
    let mut claims = serde_json::Map::new();
    claims.insert("custom:tier".into(), Value::String("gold".into()));
    claims.insert("perms".into(), serde_json::json!(["a", "b"]));
    claims.insert("mixed".into(), serde_json::json!(["a", 1, {"b": null}]));
    claims.insert("quoted".into(), serde_json::json!(["say \"hi\"", "\\"]));
    let settings = IdentitySettings {
        prefix: "x-auth-".into(),
        claims: vec![
            ("tier".into(), "custom:tier".into()),
            ("perms".into(), "perms".into()),
            ("mixed".into(), "mixed".into()),
            ("quoted".into(), "quoted".into()),
            ("absent".into(), "absent".into()),
        ],
        ..IdentitySettings::default()
    };
    let names = IdentityNames::new(&settings).unwrap();
    let h = identity_headers(&view(&[], Some(&claims)), &names).unwrap();
    let get = |n: &str| {
        h.pairs(&names)
            .find(|(k, _)| *k == n)
            .map(|(_, v)| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(get("x-auth-tier").as_deref(), Some("gold"));
    assert_eq!(get("x-auth-perms").as_deref(), Some(r#"["a","b"]"#));
    assert_eq!(
        get("x-auth-mixed").as_deref(),
        Some(r#"["a",1,{"b":null}]"#)
    );
    assert_eq!(
        get("x-auth-quoted").as_deref(),
        Some(r#"["say \"hi\"","\\"]"#)
    );
    assert_eq!(get("x-auth-absent"), None);
}

#[test]
fn a_present_claim_replaces_its_built_in_header_and_an_absent_one_leaves_it() {
    let mut claims = serde_json::Map::new();
    claims.insert(
        "iss".into(),
        Value::String("https://idp.example/pool".into()),
    );
    let settings = IdentitySettings {
        prefix: "x-auth-".into(),
        claims: vec![
            ("issuer".into(), "iss".into()),
            ("groups".into(), "cognito:groups".into()),
        ],
        ..IdentitySettings::default()
    };
    let groups = vec!["admins".to_owned()];
    let names = IdentityNames::new(&settings).unwrap();
    let h = identity_headers(&view(&groups, Some(&claims)), &names).unwrap();
    let all = |n: &str| -> Vec<String> {
        h.pairs(&names)
            .filter(|(k, _)| *k == n)
            .map(|(_, v)| String::from_utf8(v.to_vec()).unwrap())
            .collect()
    };
    // Built once, from the claim; not the built-in value as well.
    assert_eq!(all("x-auth-issuer"), ["https://idp.example/pool"]);
    // The claim is absent: the built-in header is sent.
    assert_eq!(all("x-auth-groups"), [r#"["admins"]"#]);
    assert_eq!(all("x-auth-sub"), ["1b2c-uuid"]);
}

#[test]
fn values_that_cannot_be_headers_are_refused_not_truncated() {
    let mut claims = serde_json::Map::new();
    claims.insert(
        "evil".into(),
        Value::String("ok\r\nx-auth-sub: root".into()),
    );
    let settings = IdentitySettings {
        prefix: "x-auth-".into(),
        claims: vec![("evil".into(), "evil".into())],
        ..IdentitySettings::default()
    };
    let err = identity_headers(
        &view(&[], Some(&claims)),
        &IdentityNames::new(&settings).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.header, "x-auth-evil");
    assert!(header_value("caf\u{e9}").is_none());
    assert!(header_value("nul\0").is_none());
    assert!(header_value("plain value\twith tab").is_some());
}

/// The `x-auth-groups` value built for `groups` under the default settings.
fn groups_header(groups: &[&str]) -> Result<Vec<u8>, HeaderError> {
    let names = IdentityNames::new(&IdentitySettings::default()).unwrap();
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    let h = identity_headers(&view(&groups, None), &names)?;
    let (_, value) = h
        .pairs(&names)
        .find(|(k, _)| *k == "x-auth-groups")
        .unwrap();
    Ok(value.to_vec())
}

#[test]
fn arrays_are_written_as_serde_json_writes_them_and_unsendable_ones_refused() {
    let groups = ["plain", "with \"quote\" and \\", "tab\there", ""];
    assert_eq!(
        groups_header(&groups).unwrap(),
        serde_json::to_vec(&groups).unwrap()
    );
    // Non-ASCII is escaped as JSON `\uXXXX` (a surrogate pair above U+FFFF), which parses
    // back to the same strings.
    let groups = ["caf\u{e9}", "\u{1f600} ok", "\u{65e5}\u{672c}"];
    let sent = groups_header(&groups).unwrap();
    assert_eq!(
        String::from_utf8(sent.clone()).unwrap(),
        r#"["caf\u00e9","\ud83d\ude00 ok","\u65e5\u672c"]"#
    );
    let back: Vec<String> = serde_json::from_slice(&sent).unwrap();
    assert_eq!(back, groups);
}

#[test]
fn array_items_with_control_characters_are_escaped_as_serde_json_escapes_them() {
    let groups = ["a\nb", "nul\0", "cr\r", "unit\u{1f}"];
    assert_eq!(
        groups_header(&groups).unwrap(),
        serde_json::to_vec(&groups).unwrap()
    );
    // DEL, which JSON leaves raw but a header cannot carry, is escaped too.
    let sent = groups_header(&["del\u{7f}"]).unwrap();
    assert_eq!(sent, br#"["del\u007f"]"#);
    let back: Vec<String> = serde_json::from_slice(&sent).unwrap();
    assert_eq!(back, ["del\u{7f}"]);
}

/// The header value a string claim `value` is sent as (the default `x-auth-` prefix).
fn string_claim(value: &str) -> Result<String, HeaderError> {
    let mut claims = serde_json::Map::new();
    claims.insert("name".into(), Value::String(value.into()));
    let settings = IdentitySettings {
        prefix: "x-auth-".into(),
        claims: vec![("name".into(), "name".into())],
        ..IdentitySettings::default()
    };
    let names = IdentityNames::new(&settings).unwrap();
    let h = identity_headers(&view(&[], Some(&claims)), &names)?;
    let (_, v) = h.pairs(&names).find(|(k, _)| *k == "x-auth-name").unwrap();
    Ok(String::from_utf8(v.to_vec()).unwrap())
}

#[test]
fn non_ascii_strings_are_sent_as_rfc_8187_ext_values() {
    assert_eq!(string_claim("jos\u{e9}").unwrap(), "UTF-8''jos%C3%A9");
    assert_eq!(
        string_claim("Fran\u{e7}ois M\u{fc}ller").unwrap(),
        "UTF-8''Fran%C3%A7ois%20M%C3%BCller"
    );
    // ASCII stays as it is, but a value that starts like an ext-value is encoded too, so the
    // prefix always means "decode me".
    assert_eq!(string_claim("plain-name_1").unwrap(), "plain-name_1");
    assert_eq!(string_claim("UTF-8''x").unwrap(), "UTF-8''UTF-8%27%27x");
    // Whatever an RFC 8187 decoder would take for an ext-value is encoded too (any charset,
    // any case, with a language tag), and so is white space that header parsers trim.
    for (sent, want) in [
        ("utf-8''%61dmin", "UTF-8''utf-8%27%27%2561dmin"),
        ("UTF-8'en'%61dmin", "UTF-8''UTF-8%27en%27%2561dmin"),
        ("ISO-8859-1''%61dmin", "UTF-8''ISO-8859-1%27%27%2561dmin"),
        ("a'b'", "UTF-8''a%27b%27"),
        (" admin", "UTF-8''%20admin"),
        ("admin\t", "UTF-8''admin%09"),
    ] {
        assert_eq!(string_claim(sent).unwrap(), want, "{sent:?}");
    }
    for plain in ["O'Brien", "it's", "a b", "'x'"] {
        assert_eq!(string_claim(plain).unwrap(), plain);
    }
    // Control characters are still refused, encoded or not.
    assert!(string_claim("jos\u{e9}\r\nx-auth-sub: root").is_err());
    assert!(string_claim("nul\0").is_err());
    // Decoding gives the value back.
    let sent = string_claim("\u{1f600} \u{65e5}\u{672c}").unwrap();
    let rest = sent.strip_prefix("UTF-8''").unwrap();
    let back = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .unwrap();
    assert_eq!(back, "\u{1f600} \u{65e5}\u{672c}");
}

#[test]
fn non_ascii_in_other_json_claims_is_escaped() {
    let mut claims = serde_json::Map::new();
    claims.insert(
        "profile".into(),
        serde_json::json!({"city": "Z\u{fc}rich", "n": 1}),
    );
    let settings = IdentitySettings {
        prefix: "x-auth-".into(),
        claims: vec![("profile".into(), "profile".into())],
        ..IdentitySettings::default()
    };
    let names = IdentityNames::new(&settings).unwrap();
    let h = identity_headers(&view(&[], Some(&claims)), &names).unwrap();
    let (_, v) = h
        .pairs(&names)
        .find(|(k, _)| *k == "x-auth-profile")
        .unwrap();
    assert_eq!(v, br#"{"city":"Z\u00fcrich","n":1}"#);
}

#[test]
fn more_claim_mappings_than_built_in_headers_are_all_sent() {
    let mut claims = serde_json::Map::new();
    let mut pairs = Vec::new();
    for i in 0..12 {
        claims.insert(format!("c{i}"), Value::String(format!("v{i}")));
        pairs.push((format!("c{i}"), format!("c{i}")));
    }
    // And one that replaces a built-in after them.
    claims.insert("sub".into(), Value::String("from-claim".into()));
    pairs.push(("sub".into(), "sub".into()));
    let settings = IdentitySettings {
        prefix: "x-auth-".into(),
        claims: pairs,
        ..IdentitySettings::default()
    };
    let names = IdentityNames::new(&settings).unwrap();
    let h = identity_headers(&view(&[], Some(&claims)), &names).unwrap();
    let all: Vec<(String, String)> = h
        .pairs(&names)
        .map(|(k, v)| (k.to_owned(), String::from_utf8(v.to_vec()).unwrap()))
        .collect();
    for i in 0..12 {
        assert!(
            all.contains(&(format!("x-auth-c{i}"), format!("v{i}"))),
            "{all:?}"
        );
    }
    let subs: Vec<&str> = all
        .iter()
        .filter(|(k, _)| k == "x-auth-sub")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(subs, ["from-claim"]);
    let mut r = req(&[]);
    h.apply(&mut r, &names).unwrap();
    assert_eq!(r.headers.get("x-auth-c11").unwrap(), "v11");
    assert_eq!(r.headers.get("x-auth-sub").unwrap(), "from-claim");
}

#[test]
fn built_headers_are_set_on_the_request_replacing_any_of_the_same_name() {
    let names = IdentityNames::new(&all_builtins()).unwrap();
    let groups = vec!["admins".to_owned()];
    let h = identity_headers(&view(&groups, None), &names).unwrap();
    let mut r = req(&[("X-Auth-Sub", "mallory"), ("accept", "*/*")]);
    h.apply(&mut r, &names).unwrap();
    let get = |n: &str| -> Vec<&str> {
        r.headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(get("x-auth-sub"), ["1b2c-uuid"]);
    assert_eq!(get("x-auth-groups"), [r#"["admins"]"#]);
    assert_eq!(get("x-auth-roles"), [r#"["reader","owner"]"#]);
    assert_eq!(get("accept"), ["*/*"]);
    // Every header built is on the request, and the wire form has each name once.
    assert_eq!(h.pairs(&names).count(), 8);
    let mut wire = bytes::BytesMut::new();
    r.header_to_h1_wire(&mut wire);
    let wire = String::from_utf8(wire.to_vec()).unwrap();
    assert_eq!(wire.matches("x-auth-sub: ").count(), 1, "{wire}");
    assert!(!wire.contains("mallory"), "{wire}");
}

#[test]
fn route_claim_headers_are_encoded_as_identity_claims_are_and_replace_client_values() {
    let names = RouteHeaderNames::new(
        &[
            ("X-Email".into(), "email".into()),
            ("x-tenants".into(), "custom:tenants".into()),
            ("x-level".into(), "custom:level".into()),
            ("x-absent".into(), "nothing".into()),
        ],
        ArrayEncoding::Json,
    )
    .unwrap();
    let claims: serde_json::Map<String, Value> = serde_json::from_str(
        r#"{"email":"a@example.com","custom:tenants":["t1","t\"2"],"custom:level":3}"#,
    )
    .unwrap();
    let h = route_claim_headers(&names, &claims).unwrap().unwrap();
    let all: Vec<(&str, String)> = h
        .pairs(&names)
        .map(|(k, v)| (k, String::from_utf8(v.to_vec()).unwrap()))
        .collect();
    assert_eq!(
        all,
        [
            ("x-email", "a@example.com".to_owned()),
            ("x-tenants", r#"["t1","t\"2"]"#.to_owned()),
            ("x-level", "3".to_owned()),
        ]
    );
    let mut r = req(&[("x-email", "mallory@example.com"), ("x-absent", "kept")]);
    h.apply(&mut r, &names).unwrap();
    let emails: Vec<_> = r.headers.get_all("x-email").iter().collect();
    assert_eq!(emails, [HeaderValue::from_static("a@example.com")]);
    // An absent claim sets nothing (the gate strips the client's value beforehand).
    assert_eq!(r.headers.get("x-absent").unwrap(), "kept");
    // A route without claim headers builds nothing; an unsendable value is refused.
    let none = RouteHeaderNames::new(&[], ArrayEncoding::Json).unwrap();
    assert!(route_claim_headers(&none, &claims).unwrap().is_none());
    let bad: serde_json::Map<String, Value> =
        serde_json::from_str(r#"{"email":"a@example.com\r\nx-auth-sub: root"}"#).unwrap();
    assert_eq!(
        route_claim_headers(&names, &bad).unwrap_err(),
        HeaderError {
            header: "x-email".into()
        }
    );
    assert!(
        RouteHeaderNames::new(&[("bad name".into(), "email".into())], ArrayEncoding::Json).is_err()
    );
}

#[test]
fn request_id_is_kept_when_well_formed_else_generated() {
    let id = |v: &[u8]| request_id(Some(&HeaderValue::from_bytes(v).unwrap()));
    assert_eq!(id(b"abc-123"), "abc-123");
    let fresh = id(b"bad id with spaces");
    assert_eq!(fresh.len(), 32);
    assert!(fresh.as_bytes().iter().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(request_id_str(&fresh).len(), 32);
    assert_eq!(id(&[b'a'; 129]).len(), 32);
    assert_eq!(id(b"caf\xe9").len(), 32);
    assert_ne!(new_request_id(), new_request_id());
    assert_eq!(request_id(None).len(), 32);
    // Every nibble is used: 1,000 fresh ids are distinct and use every hex digit.
    let ids: std::collections::BTreeSet<_> = (0..1000).map(|_| new_request_id()).collect();
    assert_eq!(ids.len(), 1000);
    let digits: std::collections::BTreeSet<u8> =
        ids.iter().flat_map(|v| v.as_bytes().to_vec()).collect();
    assert_eq!(digits.len(), 16);
}

#[test]
fn client_addresses_are_written_as_display_writes_them() {
    for ip in [
        "0.0.0.0",
        "9.10.99.100",
        "192.0.2.7",
        "255.255.255.255",
        "10.0.200.1",
        "::1",
        "2001:db8::8a2e:370:7334",
    ] {
        let mut r = req(&[]);
        set_forwarded(
            &mut r,
            Some(ip.parse().unwrap()),
            false,
            HeaderValue::from_static("h.example"),
            false,
        );
        assert_eq!(r.headers.get("x-forwarded-for").unwrap(), ip);
    }
}

#[test]
fn forwarded_headers_append_and_replace() {
    let mut r = req(&[
        ("host", "api.example.com"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-proto", "gopher"),
    ]);
    set_forwarded(
        &mut r,
        Some("192.0.2.7".parse().unwrap()),
        true,
        HeaderValue::from_static("api.example.com"),
        true,
    );
    let get = |n: &str| r.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    // From a trusted proxy, its list is kept and the peer appended.
    assert_eq!(
        get("x-forwarded-for").as_deref(),
        Some("10.0.0.1, 192.0.2.7")
    );
    // A trusted proxy's `gopher` is not a scheme: replaced.
    assert_eq!(get("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(get("x-forwarded-host").as_deref(), Some("api.example.com"));
    // Its `https` (it terminated TLS) is kept over poolgate's own `http`; a client's is not.
    for (trusted, want) in [(true, "https"), (false, "http")] {
        let mut r = req(&[("x-forwarded-proto", "https")]);
        set_forwarded(&mut r, None, false, HeaderValue::from_static("h"), trusted);
        assert_eq!(r.headers.get("x-forwarded-proto").unwrap(), want);
    }

    // A prior value that is not text is dropped, not kept as an empty item.
    let mut r = RequestHeader::build("GET", b"/", None).unwrap();
    r.append_header(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"caf\xe9").unwrap(),
    )
    .unwrap();
    set_forwarded(
        &mut r,
        Some("192.0.2.7".parse().unwrap()),
        false,
        HeaderValue::from_static("h.example"),
        true,
    );
    assert_eq!(r.headers.get("x-forwarded-for").unwrap(), "192.0.2.7");

    // From anyone else, the client's list is replaced by its address.
    let mut r = req(&[("x-forwarded-for", "10.0.0.1, 1.2.3.4")]);
    set_forwarded(
        &mut r,
        Some("192.0.2.7".parse().unwrap()),
        false,
        HeaderValue::from_static("h.example"),
        false,
    );
    assert_eq!(r.headers.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(r.headers.get("x-forwarded-for").unwrap(), "192.0.2.7");

    let mut r = req(&[("x-forwarded-host", "spoofed")]);
    set_forwarded(
        &mut r,
        Some("::1".parse().unwrap()),
        false,
        HeaderValue::from_static("h.example"),
        false,
    );
    assert_eq!(r.headers.get("x-forwarded-for").unwrap(), "::1");
    assert_eq!(r.headers.get("x-forwarded-proto").unwrap(), "http");
    // The judged host, never the client's claim.
    assert_eq!(r.headers.get("x-forwarded-host").unwrap(), "h.example");
}

#[test]
fn bearer_token_parsing() {
    assert_eq!(
        bearer_token(Some(b"Bearer abc.def.ghi")),
        Some("abc.def.ghi")
    );
    assert_eq!(bearer_token(Some(b"bearer   tok ")), Some("tok"));
    assert_eq!(bearer_token(Some(b"Basic dXNlcg==")), None);
    assert_eq!(bearer_token(Some(b"Bearer ")), None);
    assert_eq!(bearer_token(Some(b"Bearer")), None);
    assert_eq!(bearer_token(None), None);
    assert_eq!(bearer_token(Some(&[0xff, 0xfe])), None);
    assert_eq!(bearer_token(Some("Bearer tok\u{e9}".as_bytes())), None);
    assert_eq!(
        bearer_token(Some(b"\tBearer\tx")),
        None,
        "the scheme ends at a space"
    );
}

#[test]
fn head_size_grows_with_headers() {
    let small = request_head_size(&req(&[]));
    let big = request_head_size(&req(&[("x-big", &"a".repeat(1000))]));
    assert!(big >= small + 1000);
}

#[test]
fn only_an_upgrade_to_websocket_switches() {
    let resp = |values: &[&str]| {
        let mut r = pingora::http::ResponseHeader::build(101, None).unwrap();
        for v in values {
            r.append_header("upgrade", *v).unwrap();
        }
        r
    };
    assert!(upgrades_to_websocket(&resp(&["websocket"])));
    assert!(upgrades_to_websocket(&resp(&["WebSocket"])));
    assert!(!upgrades_to_websocket(&resp(&[])));
    assert!(!upgrades_to_websocket(&resp(&["h2c"])));
    assert!(!upgrades_to_websocket(&resp(&["websocket, h2c"])));
    assert!(!upgrades_to_websocket(&resp(&["websocket", "h2c"])));
}
