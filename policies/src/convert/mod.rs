//! Validating conversion from the file structs into the internal model.
//!
//! Every problem is recorded as a located [`Diagnostic`] and conversion carries on, so one run
//! reports them all. Names are collected over the main file and its includes first, so that
//! references can be checked whatever file they sit in.

mod access;
mod ctx;
mod net;
mod signing;
mod tls;

pub(crate) use ctx::{Ctx, Def};

use std::time::Duration;

use crate::Config;
use crate::diag::Diagnostics;
use crate::file::{ConnectionsFile, FileConfig, IncludeFile, Named, S};
use crate::model::{
    AccessLogTarget, ArrayEncoding, BUILTIN_IDENTITY_HEADERS, ClientRequestId, Connections,
    IdentityHeaders, Limits, Listener, ListenerTls, Server,
};

/// The parsed main file and its parsed includes, each with its file name.
pub(crate) struct Parts {
    pub main: (String, FileConfig),
    pub includes: Vec<(String, IncludeFile)>,
}

/// The collected names of every part.
pub(crate) struct Names {
    pub issuers: Vec<Def>,
    pub upstreams: Vec<Def>,
    pub roles: Vec<Def>,
}

fn collect_names<T, U, V>(
    ctx: &mut Ctx<'_>,
    file: &str,
    issuers: &Named<T>,
    upstreams: &Named<U>,
    roles: &Named<V>,
    names: &mut Names,
) {
    ctx.file = file.to_owned();
    for (k, _) in &issuers.0 {
        ctx.define(
            &mut names.issuers,
            k,
            "issuer",
            &format!("issuers.{}", k.value),
        );
    }
    for (k, _) in &upstreams.0 {
        ctx.define(
            &mut names.upstreams,
            k,
            "upstream",
            &format!("upstreams.{}", k.value),
        );
    }
    for (k, _) in &roles.0 {
        ctx.define(&mut names.roles, k, "role", &format!("roles.{}", k.value));
    }
}

/// Converts and validates; `Err` carries every problem found.
pub(crate) fn convert(parts: Parts, mut ctx: Ctx<'_>) -> Result<Config, Diagnostics> {
    let (main_file, main) = &parts.main;
    let mut names = Names {
        issuers: Vec::new(),
        upstreams: Vec::new(),
        roles: Vec::new(),
    };
    collect_names(
        &mut ctx,
        main_file,
        &main.issuers,
        &main.upstreams,
        &main.roles,
        &mut names,
    );
    for (file, inc) in &parts.includes {
        collect_names(
            &mut ctx,
            file,
            &inc.issuers,
            &inc.upstreams,
            &inc.roles,
            &mut names,
        );
    }

    ctx.file = main_file.clone();
    if main.version.value != 1 {
        ctx.push(
            ctx.diag(
                &main.version.referenced,
                "version",
                format!("unsupported version `{}`", main.version.value),
            )
            .help("this poolgate reads `version: 1`"),
        );
    }
    let listeners = listeners(&mut ctx, main);
    let admin = main
        .admin
        .as_ref()
        .and_then(|a| socket_addr(&mut ctx, a, "admin"));
    if let (Some(addr), Some(at)) = (admin, &main.admin)
        && let Some(i) = listeners.iter().position(|l| l.address == addr)
    {
        ctx.push(
            ctx.diag(
                &at.referenced,
                "admin",
                format!("admin address `{addr}` is also a listener"),
            )
            .help(format!(
                "`listen[{i}]` uses it: give the admin endpoints their own port"
            )),
        );
    }
    let identity_headers = identity_headers(&mut ctx, main);
    let signed_identity = main
        .signed_identity
        .as_ref()
        .and_then(|s| signing::signed_identity(&mut ctx, s));
    let limits = limits(&mut ctx, main);
    let server = server(&mut ctx, main);

    // Sections that may also come from includes, in file order (main first).
    let mut issuers = Vec::new();
    let mut upstreams = Vec::new();
    let mut roles = Vec::new();
    let mut routes = Vec::new();
    let all: Vec<(&String, &Named<_>, &Named<_>, &Named<_>, &Vec<_>)> = std::iter::once((
        main_file,
        &main.issuers,
        &main.upstreams,
        &main.roles,
        &main.routes,
    ))
    .chain(
        parts
            .includes
            .iter()
            .map(|(f, i)| (f, &i.issuers, &i.upstreams, &i.roles, &i.routes)),
    )
    .collect();
    for (file, iss, ups, rls, _) in &all {
        ctx.file = (*file).clone();
        for (name, body) in &iss.0 {
            issuers.extend(net::issuer(&mut ctx, name, body));
        }
        for (name, body) in &ups.0 {
            upstreams.extend(net::upstream(&mut ctx, name, body));
        }
        for (name, body) in &rls.0 {
            roles.push(access::role(&mut ctx, name, body));
        }
    }
    ctx.file = main_file.clone();
    let role_mapping = main
        .role_mapping
        .as_ref()
        .map(|m| access::role_mapping(&mut ctx, m, &names))
        .unwrap_or_default();
    let mut route_spans = Vec::new();
    let mut host_spans = Vec::new();
    let mut route_names = Vec::new();
    for (n, (file, _, _, _, rts)) in all.iter().enumerate() {
        ctx.file = (*file).clone();
        // Unnamed routes of included files are named after their file: `part.yaml:routes[0]`.
        let origin = if n == 0 {
            String::new()
        } else {
            let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
            format!("{base}:")
        };
        for (i, r) in rts.iter().enumerate() {
            if let Some(n) = &r.value.name {
                ctx.define(&mut route_names, n, "route", &format!("routes[{i}].name"));
            }
            if let Some(flag) = r.value.signed_identity.as_ref().filter(|b| b.value) {
                let key = format!("routes[{i}].signed_identity");
                if main.signed_identity.is_none() {
                    ctx.push(
                        ctx.diag(&flag.referenced, &key, "no `signed_identity` keys to sign with")
                            .help("add a top-level `signed_identity: { keys: [{ kid: …, file: key.pem }] }`"),
                    );
                } else if r.value.public.as_ref().is_some_and(|p| p.value) {
                    ctx.push(
                        ctx.diag(
                            &flag.referenced,
                            &key,
                            "a public route has no identity to sign",
                        )
                        .help("remove `signed_identity` or `public`"),
                    );
                }
            }
            if let Some(route) = access::route(&mut ctx, &origin, i, r, &names, &identity_headers) {
                route_spans.push((
                    ctx.span(&r.value.matcher.path.referenced),
                    format!("routes[{i}].match.path"),
                ));
                host_spans.push(
                    r.value
                        .matcher
                        .host
                        .as_ref()
                        .map(|h| (ctx.span(&h.referenced), format!("routes[{i}].match.host"))),
                );
                routes.push(route);
            }
        }
    }
    crate::overlap::check(&mut ctx, &routes, &route_spans);

    let mut diags = ctx.diags;
    if !diags.is_empty() {
        diags.sort();
        return Err(diags);
    }
    let mut warnings = diags.warnings_sharing_sources();
    for w in
        crate::overlap::host_routes_beside_any_host(&routes, &upstreams, &host_spans, &route_spans)
    {
        warnings.push(w);
    }
    let mut config = Config::assemble(
        listeners,
        admin,
        issuers,
        upstreams,
        roles,
        role_mapping,
        routes,
        identity_headers,
        limits,
        server,
        std::iter::once(main_file.clone())
            .chain(parts.includes.iter().map(|(f, _)| f.clone()))
            .collect(),
    );
    config.warnings = warnings;
    config.signed_identity = signed_identity;
    Ok(config)
}

pub(crate) fn socket_addr(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<std::net::SocketAddr> {
    let text = ctx.text(s, key)?;
    match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.push(
                ctx.diag(&s.referenced, key, format!("invalid address `{text}`"))
                    .help("write an IP address and a port: `0.0.0.0:8080`, `[::1]:8443`"),
            );
            None
        }
    }
}

fn listeners(ctx: &mut Ctx<'_>, main: &FileConfig) -> Vec<Listener> {
    let mut out = Vec::new();
    for (i, l) in main.listen.iter().enumerate() {
        let key = format!("listen[{i}]");
        let address = socket_addr(ctx, &l.value.address, &format!("{key}.address"));
        let tls = l.value.tls.as_ref().and_then(|t| {
            let cert = ctx.text(&t.cert, &format!("{key}.tls.cert"))?;
            let key_file = ctx.text(&t.key, &format!("{key}.tls.key"))?;
            // Relative to the policy file, as includes and upstream CA bundles are.
            Some(ListenerTls {
                cert: tls::resolve(&ctx.file, &cert),
                key: tls::resolve(&ctx.file, &key_file),
            })
        });
        if let Some(address) = address {
            if let Some(prev) = out.iter().position(|o: &Listener| o.address == address) {
                ctx.push(
                    ctx.diag(
                        &l.value.address.referenced,
                        &format!("{key}.address"),
                        format!("duplicate listener address `{address}`"),
                    )
                    .help(format!("`listen[{prev}]` already listens there")),
                );
            }
            out.push(Listener { address, tls });
        }
    }
    out
}

/// A header name: lowercase token characters.
pub(crate) fn header_name(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<String> {
    let text = ctx.text(s, key)?;
    let lower = text.to_ascii_lowercase();
    if lower.is_empty()
        || !lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        ctx.push(
            ctx.diag(&s.referenced, key, format!("invalid header name `{text}`"))
                .help("header names are letters, digits and `-` (no spaces or `:`)"),
        );
        return None;
    }
    Some(lower)
}

fn identity_headers(ctx: &mut Ctx<'_>, main: &FileConfig) -> IdentityHeaders {
    let mut out = IdentityHeaders::default();
    let Some(ih) = &main.identity_headers else {
        return out;
    };
    if let Some(p) = &ih.prefix
        && let Some(prefix) = header_name(ctx, p, "identity_headers.prefix")
    {
        use crate::reserved::{SIGNED_IDENTITY_PREFIX, folded_starts_with};
        // Either way round, some identity header would land under `x-amzn-oidc-`, which only
        // the signed identity may set.
        if folded_starts_with(&prefix, SIGNED_IDENTITY_PREFIX)
            || folded_starts_with(SIGNED_IDENTITY_PREFIX, &prefix)
        {
            ctx.push(
                ctx.diag(
                    &p.referenced,
                    "identity_headers.prefix",
                    format!("prefix `{prefix}` overlaps `{SIGNED_IDENTITY_PREFIX}`"),
                )
                .help("those headers are the signed identity's alone: pick another prefix"),
            );
        } else {
            out.prefix = prefix;
        }
    }
    if let Some(send) = &ih.send {
        out.send.clear();
        for (i, s) in send.iter().enumerate() {
            let key = format!("identity_headers.send[{i}]");
            let Some(name) = ctx.choice(s, &key, "identity header", &BUILTIN_IDENTITY_HEADERS)
            else {
                continue;
            };
            if out.send.iter().any(|n| n == name) {
                ctx.error(&s.referenced, &key, format!("`{name}` is listed twice"));
                continue;
            }
            out.send.push(name.to_owned());
        }
    }
    if let Some(e) = &ih.encoding
        && let Some(e) = array_encoding(ctx, e, "identity_headers.encoding")
    {
        out.encoding = e;
    }
    if let Some(claims) = &ih.claims {
        out.claims.clear();
        for (suffix, claim) in &claims.0 {
            let key = format!("identity_headers.claims.{}", suffix.value);
            let (Some(h), Some(c)) = (header_name(ctx, suffix, &key), ctx.text(claim, &key)) else {
                continue;
            };
            out.claims.push((h, c));
        }
    }
    for (suffix, e) in ih.encodings.iter().flat_map(|m| &m.0) {
        let key = format!("identity_headers.encodings.{}", suffix.value);
        let (Some(h), Some(e)) = (header_name(ctx, suffix, &key), array_encoding(ctx, e, &key))
        else {
            continue;
        };
        // A typo here would silently leave the header in the default encoding.
        if !out.send.contains(&h) && !out.claims.iter().any(|(s, _)| *s == h) {
            ctx.push(
                ctx.diag(
                    &suffix.referenced,
                    &key,
                    format!("no identity header `{h}` is sent"),
                )
                .help("name a header of `send` or `claims`"),
            );
            continue;
        }
        out.encodings.push((h, e));
    }
    out
}

/// A total upstream deadline: more than nothing, at most a day.
pub(crate) fn total_timeout(ctx: &mut Ctx<'_>, s: Option<&S>, key: &str) -> Option<Duration> {
    let s = s?;
    let d = ctx.duration(Some(s), key)?;
    if d.is_zero() || d > Duration::from_secs(86_400) {
        ctx.push(
            ctx.diag(&s.referenced, key, "total timeout out of range")
                .help("more than 0s and at most 1d"),
        );
        return None;
    }
    Some(d)
}

/// An array encoding by its name in the file.
pub(crate) fn array_encoding(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<ArrayEncoding> {
    let names = ArrayEncoding::ALL.map(|(n, _)| n);
    ctx.choice(s, key, "encoding", &names)
        .and_then(ArrayEncoding::from_name)
}

/// Most threads a process may ask for: far beyond any machine, well short of exhausting it.
const MAX_THREADS: u64 = 1024;

fn server(ctx: &mut Ctx<'_>, main: &FileConfig) -> Server {
    let mut out = Server::default();
    let Some(file) = &main.server else {
        return out;
    };
    if let Some(t) = &file.threads {
        if (1..=MAX_THREADS).contains(&t.value) {
            out.threads = usize::try_from(t.value).ok();
        } else {
            ctx.push(
                ctx.diag(
                    &t.referenced,
                    "server.threads",
                    format!("`{}` worker threads is out of range", t.value),
                )
                .help(format!(
                    "use 1 to {MAX_THREADS}, or leave it out for one per CPU"
                )),
            );
        }
    }
    if let Some(a) = &file.access_log {
        match ctx.choice(a, "server.access_log", "access log", &["stdout", "off"]) {
            Some("off") => out.access_log = AccessLogTarget::Off,
            Some(_) => out.access_log = AccessLogTarget::Stdout,
            None => {}
        }
    }
    if let Some(c) = file.token_cache.as_ref().and_then(|c| c.capacity.as_ref()) {
        out.token_cache_capacity = c.value;
    }
    if let Some(c) = &file.connections {
        connections(ctx, c, &mut out.connections);
    }
    for (i, p) in file.trusted_proxies.iter().enumerate() {
        let key = format!("server.trusted_proxies[{i}]");
        let Some(text) = ctx.text(p, &key) else {
            continue;
        };
        let net = text.parse::<ipnet::IpNet>().ok().or_else(|| {
            text.parse::<std::net::IpAddr>()
                .ok()
                .map(ipnet::IpNet::from)
        });
        match net {
            Some(n) if n.prefix_len() == 0 => ctx.push(
                ctx.diag(
                    &p.referenced,
                    &key,
                    format!("`{text}` trusts every client's X-Forwarded-For"),
                )
                .help("list the load balancers in front of poolgate, not every address"),
            ),
            Some(n) if n.trunc() != n => ctx.push(
                ctx.diag(&p.referenced, &key, format!("`{text}` has host bits set"))
                    .help(format!("write the network as `{}`", n.trunc())),
            ),
            Some(n) => out.trusted_proxies.push(n),
            None => ctx.push(
                ctx.diag(
                    &p.referenced,
                    &key,
                    format!("invalid address or network `{text}`"),
                )
                .help("write an address such as `10.0.0.7` or a network such as `10.0.0.0/8`"),
            ),
        }
    }
    if let Some(c) = &file.client_request_id {
        match ctx.choice(
            c,
            "server.client_request_id",
            "client_request_id",
            &["replace", "trusted", "keep"],
        ) {
            Some("keep") => out.client_request_id = ClientRequestId::Keep,
            Some("trusted") => out.client_request_id = ClientRequestId::Trusted,
            Some(_) => out.client_request_id = ClientRequestId::Replace,
            None => {}
        }
    }
    out
}

/// Most client connections a process may be told to hold.
const MAX_CONNECTIONS: u64 = 1_000_000;
/// Longest connection timeout accepted.
const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

fn connections(ctx: &mut Ctx<'_>, file: &ConnectionsFile, out: &mut Connections) {
    if let Some(m) = &file.max {
        if (1..=MAX_CONNECTIONS).contains(&m.value) {
            out.max = usize::try_from(m.value).unwrap_or(usize::MAX);
        } else {
            ctx.push(
                ctx.diag(
                    &m.referenced,
                    "server.connections.max",
                    format!("`{}` connections is out of range", m.value),
                )
                .help(format!("use 1 to {MAX_CONNECTIONS}")),
            );
        }
    }
    let whole_seconds = |d: Duration| d.subsec_nanos() == 0;
    let fields = [
        (
            &file.header_timeout,
            "header_timeout",
            &mut out.header_timeout,
        ),
        (
            &file.keepalive_timeout,
            "keepalive_timeout",
            &mut out.keepalive_timeout,
        ),
        (&file.body_timeout, "body_timeout", &mut out.body_timeout),
        (&file.send_timeout, "send_timeout", &mut out.send_timeout),
    ];
    for (raw, name, slot) in fields {
        let key = format!("server.connections.{name}");
        let Some(d) = ctx.duration(raw.as_ref(), &key) else {
            continue;
        };
        let problem = if d.is_zero() || d > MAX_CONNECTION_TIMEOUT {
            Some(("is out of range for", "use more than 0 and at most 1h"))
        } else if name == "keepalive_timeout" && !whole_seconds(d) {
            Some((
                "is not a whole number of seconds for",
                "keep-alive timeouts are whole seconds: write `75s`",
            ))
        } else {
            None
        };
        match (problem, raw) {
            (Some((what, help)), Some(s)) => ctx.push(
                ctx.diag(
                    &s.referenced,
                    &key,
                    format!("`{}` {what} `{name}`", s.value),
                )
                .help(help),
            ),
            _ => *slot = d,
        }
    }
}

fn limits(ctx: &mut Ctx<'_>, main: &FileConfig) -> Limits {
    let mut out = Limits::default();
    if let Some(m) = main
        .limits
        .as_ref()
        .and_then(|l| l.max_request_header_bytes.as_ref())
    {
        if m.value < 1024 {
            ctx.push(
                ctx.diag(
                    &m.referenced,
                    "limits.max_request_header_bytes",
                    format!("`{}` bytes is too small for request headers", m.value),
                )
                .help("use at least 1024"),
            );
        } else {
            out.max_request_header_bytes = m.value;
        }
    }
    out
}
