//! Policy files the harness writes for poolgate: the pass-through (every route public), the
//! authorizing policy of the token scenarios (shaped like `policies/examples/demo.yaml`), and
//! its variants (10,000 routes, an extra algorithm, a marker that changes on every reload).

use std::fmt::Write as _;
use std::net::SocketAddr;

/// The local (or given) issuer as the policy names it.
#[derive(Debug, Clone)]
pub struct IssuerRef {
    pub issuer: String,
    pub jwks_url: String,
    pub client_id: String,
}

/// What varies between the generated files.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub backend: SocketAddr,
    /// `None`: the pass-through policy (no issuer, every route public).
    pub issuer: Option<IssuerRef>,
    /// Extra authorized routes `/svc/s{i}/**` (the `routes` scenario).
    pub routes: usize,
    /// Also accept ES256 (the `cache` scenario mints 100,000 tokens quickly with it).
    pub es256: bool,
    /// Written into a role description, so each rewrite is a real change (`reload`).
    pub marker: u64,
    /// A P-256 key file: the `articles` route sends the signed identity (`signed`).
    pub signing_key: Option<std::path::PathBuf>,
}

fn head(s: &PolicySpec, out: &mut String) {
    let _ = write!(
        out,
        "# Written by poolgate-bench.\nversion: 1\nlisten:\n  - address: \"{}\"\nadmin: \"{}\"\n\
         upstreams:\n  backend:\n    targets: [\"{}\"]\n",
        s.listen, s.admin, s.backend
    );
}

/// The whole file for `spec`.
pub fn render(spec: &PolicySpec) -> String {
    let mut out = String::new();
    head(spec, &mut out);
    let Some(iss) = &spec.issuer else {
        out.push_str("routes:\n  - name: all\n    match: { path: \"/**\" }\n    upstream: backend\n    public: true\n");
        return out;
    };
    let algs = if spec.es256 {
        "[RS256, ES256]"
    } else {
        "[RS256]"
    };
    let _ = write!(
        out,
        "issuers:\n  bench:\n    issuer: \"{}\"\n    jwks_url: \"{}\"\n    cognito_style: true\n\
         \x20   app_clients: [\"{}\"]\n    token_use: access\n    leeway: 5s\n    algorithms: {algs}\n\
         \x20   jwks: {{ refresh_interval: 1h, min_refetch_interval: 1s }}\n",
        iss.issuer, iss.jwks_url, iss.client_id
    );
    let _ = write!(
        out,
        "roles:\n  admin:\n    description: \"everything (rev {})\"\n    allow:\n      - {{ methods: [\"*\"], paths: [\"/**\"] }}\n\
         \x20 editor:\n    allow:\n      - {{ methods: [GET, HEAD, POST, PUT, PATCH], paths: [\"/articles/**\"] }}\n\
         \x20   deny:\n      - {{ methods: [DELETE], paths: [\"/articles/**\"] }}\n\
         \x20 reader:\n    allow:\n      - {{ methods: [GET, HEAD], paths: [\"/articles/**\", \"/svc/**\"] }}\n\
         role_mapping:\n  groups:\n    admin: [admin]\n    editors: [editor, reader]\n    readers: [reader]\n",
        spec.marker
    );
    if let Some(key) = &spec.signing_key {
        let _ = write!(
            out,
            "signed_identity:\n  keys:\n    - {{ kid: bench, file: \"{}\" }}\n",
            key.display()
        );
    }
    let _ = write!(
        out,
        "routes:\n  - name: health\n    match: {{ path: /healthz, methods: [GET] }}\n    upstream: backend\n    public: true\n\
         \x20 - name: articles\n    match: {{ path: \"/articles/**\" }}\n    upstream: backend\n    auth: {{ issuer: bench }}\n{}\
         \x20 - name: admin\n    match: {{ path: \"/admin/**\" }}\n    upstream: backend\n    auth: {{ issuer: bench, roles: [admin] }}\n",
        // Written only when on, so an older poolgate (a --baseline or --poolgate binary) still
        // reads the other scenarios' files.
        if spec.signing_key.is_some() {
            "    signed_identity: true\n"
        } else {
            ""
        }
    );
    for i in 0..spec.routes {
        let _ = write!(
            out,
            "  - name: s{i}\n    match: {{ path: \"/svc/s{i}/**\" }}\n    upstream: backend\n    auth: {{ issuer: bench }}\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(issuer: bool, routes: usize) -> PolicySpec {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        PolicySpec {
            listen: a(1),
            admin: a(2),
            backend: a(3),
            issuer: issuer.then(|| IssuerRef {
                issuer: "http://127.0.0.1:4/pool".into(),
                jwks_url: "http://127.0.0.1:4/pool/.well-known/jwks.json".into(),
                client_id: "client".into(),
            }),
            routes,
            es256: false,
            marker: 7,
            signing_key: None,
        }
    }

    #[test]
    fn generated_policies_load_and_route() {
        for (s, routes) in [
            (spec(false, 0), 1),
            (spec(true, 0), 3),
            (spec(true, 50), 53),
        ] {
            let text = render(&s);
            let cfg = poolgate_policies::load_str("bench.yaml", &text, &|_| None)
                .unwrap_or_else(|d| panic!("{d}\n{text}"));
            assert_eq!(cfg.routes.len(), routes, "{text}");
        }
        assert!(render(&spec(true, 0)).contains("rev 7"));
    }
}
