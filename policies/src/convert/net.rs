//! Issuers and upstreams.

use super::Ctx;
use crate::claim_path::ClaimPath;
use crate::file::{IssuerFile, S, UpstreamFile};
use crate::model::{
    Balance, HashKey, HealthCheck, Issuer, JwksTimings, KeySource, Timeouts, TokenUse, Upstream,
};
use std::time::Duration;

/// Algorithms an issuer may allow (asymmetric only: keys come from a JWKS).
const ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

pub(super) fn token_use(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<TokenUse> {
    Some(
        match ctx.choice(s, key, "token_use", &["access", "id", "any"])? {
            "id" => TokenUse::Id,
            "any" => TokenUse::Any,
            _ => TokenUse::Access,
        },
    )
}

fn url(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<String> {
    let text = ctx.text(s, key)?;
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/') || r.contains(char::is_whitespace)) {
        ctx.push(
            ctx.diag(&s.referenced, key, format!("invalid URL `{text}`"))
                .help("write an absolute `https://` URL"),
        );
        return None;
    }
    Some(text)
}

fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn cognito(ctx: &mut Ctx<'_>, name: &str, c: &crate::file::CognitoFile) -> Option<KeySource> {
    let key = format!("issuers.{name}.cognito");
    let region = ctx.text(&c.region, &format!("{key}.region"))?;
    let pool = ctx.text(&c.user_pool_id, &format!("{key}.user_pool_id"))?;
    let mut ok = true;
    if !is_region(&region) {
        ctx.push(
            ctx.diag(
                &c.region.referenced,
                &format!("{key}.region"),
                format!("invalid AWS region `{region}`"),
            )
            .help("write a region such as `eu-west-1`"),
        );
        ok = false;
    }
    match pool.split_once('_') {
        Some((prefix, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            if ok && prefix != region {
                ctx.push(
                    ctx.diag(
                        &c.user_pool_id.referenced,
                        &format!("{key}.user_pool_id"),
                        format!("user pool `{pool}` is not in region `{region}`"),
                    )
                    .help(format!(
                        "a pool id starts with its region: did you mean `region: {prefix}`?"
                    )),
                );
                ok = false;
            }
        }
        _ => {
            ctx.push(
                ctx.diag(
                    &c.user_pool_id.referenced,
                    &format!("{key}.user_pool_id"),
                    format!("invalid user pool id `{pool}`"),
                )
                .help("a pool id looks like `eu-west-1_AbCdEf123`"),
            );
            ok = false;
        }
    }
    ok.then_some(KeySource::Cognito {
        region,
        user_pool_id: pool,
    })
}

pub(super) fn issuer(ctx: &mut Ctx<'_>, name: &S, f: &IssuerFile) -> Option<Issuer> {
    let n = &name.value;
    let key = format!("issuers.{n}");
    let source = match (&f.cognito, &f.issuer, &f.jwks_url) {
        (Some(c), None, None) => cognito(ctx, n, &c.value),
        (Some(c), _, _) => {
            ctx.push(
                ctx.diag(
                    &c.referenced,
                    &format!("{key}.cognito"),
                    format!("issuer `{n}` has both `cognito` and `issuer`/`jwks_url`"),
                )
                .help(
                    "`cognito` derives the issuer and the JWKS URL: remove `issuer` and `jwks_url`",
                ),
            );
            None
        }
        (None, Some(i), Some(j)) => {
            let issuer = url(ctx, i, &format!("{key}.issuer"));
            let jwks_url = url(ctx, j, &format!("{key}.jwks_url"));
            Some(KeySource::Explicit {
                issuer: issuer?,
                jwks_url: jwks_url?,
            })
        }
        (None, Some(i), None) => {
            url(ctx, i, &format!("{key}.issuer")).map(|issuer| KeySource::Discovery { issuer })
        }
        (None, None, Some(j)) => {
            ctx.push(
                ctx.diag(
                    &j.referenced,
                    &format!("{key}.jwks_url"),
                    format!("issuer `{n}` has `jwks_url` but no `issuer`"),
                )
                .help("add `issuer:` (the exact `iss` claim of its tokens)"),
            );
            None
        }
        (None, None, None) => {
            ctx.push(
                ctx.diag(&name.referenced, &key, format!("issuer `{n}` has no key source"))
                    .help("add `cognito: {region, user_pool_id}`, or `issuer:` (and optionally `jwks_url:`)"),
            );
            None
        }
    };
    let is_cognito = f.cognito.is_some();
    let cognito_style = match &f.cognito_style {
        Some(b) if is_cognito && !b.value => {
            ctx.error(
                &b.referenced,
                &format!("{key}.cognito_style"),
                "a `cognito` issuer is always cognito-style",
            );
            true
        }
        Some(b) => b.value,
        None => is_cognito,
    };
    let mut texts = |list: &[S], what: &str| -> Vec<String> {
        list.iter()
            .enumerate()
            .filter_map(|(i, s)| ctx.text(s, &format!("{key}.{what}[{i}]")))
            .collect()
    };
    let app_clients = texts(&f.app_clients, "app_clients");
    let audiences = texts(&f.audiences, "audiences");
    // Without a client list, a token minted for any app client of the pool would pass: a
    // cognito-style issuer must name the clients it accepts (AWS's own verifier insists too).
    if cognito_style && f.app_clients.is_empty() && source.is_some() {
        ctx.push(
            ctx.diag(
                &name.referenced,
                &key,
                format!("cognito-style issuer `{n}` lists no `app_clients`"),
            )
            .help("add `app_clients: [<app client id>]`: tokens of every other client of the pool are refused"),
        );
    }
    let token_use = f
        .token_use
        .as_ref()
        .and_then(|t| token_use(ctx, t, &format!("{key}.token_use")))
        .unwrap_or_default();
    let leeway = ctx
        .duration(f.leeway.as_ref(), &format!("{key}.leeway"))
        .unwrap_or(Duration::ZERO);
    let mut algorithms = Vec::new();
    for (i, a) in f.algorithms.iter().enumerate() {
        let akey = format!("{key}.algorithms[{i}]");
        let Some(text) = ctx.text(a, &akey) else {
            continue;
        };
        if ALGORITHMS.contains(&text.as_str()) {
            algorithms.push(text);
        } else if text.starts_with("HS") || text.eq_ignore_ascii_case("none") {
            ctx.push(
                ctx.diag(
                    &a.referenced,
                    &akey,
                    format!("algorithm `{text}` is never accepted"),
                )
                .help("keys come from a JWKS: use an asymmetric algorithm such as `RS256`"),
            );
        } else {
            let d = ctx
                .diag(&a.referenced, &akey, format!("unknown algorithm `{text}`"))
                .maybe_help(crate::diag::suggest(&text, ALGORITHMS));
            ctx.push(d);
        }
    }
    if algorithms.is_empty() {
        algorithms.push("RS256".into());
    }
    let jwks = f
        .jwks
        .as_ref()
        .map(|j| JwksTimings {
            refresh_interval: ctx.duration(
                j.refresh_interval.as_ref(),
                &format!("{key}.jwks.refresh_interval"),
            ),
            min_refetch_interval: ctx.duration(
                j.min_refetch_interval.as_ref(),
                &format!("{key}.jwks.min_refetch_interval"),
            ),
            fetch_timeout: ctx.duration(
                j.fetch_timeout.as_ref(),
                &format!("{key}.jwks.fetch_timeout"),
            ),
            max_stale: ctx.duration(j.max_stale.as_ref(), &format!("{key}.jwks.max_stale")),
        })
        .unwrap_or_default();
    let claims = f.claims.as_ref();
    let mut path = |raw: Option<&S>, what: &str, default: ClaimPath| -> ClaimPath {
        let Some(s) = raw else { return default };
        let ckey = format!("{key}.claims.{what}");
        let Some(text) = ctx.text(s, &ckey) else {
            return default;
        };
        match ClaimPath::parse(&text) {
            Ok(p) => p,
            Err(why) => {
                ctx.push(
                    ctx.diag(&s.referenced, &ckey, format!("invalid claim path `{text}`"))
                        .help(why),
                );
                default
            }
        }
    };
    let groups_claim = path(
        claims.and_then(|c| c.groups.as_ref()),
        "groups",
        crate::model::default_groups_claim(),
    );
    let scopes_claim = path(
        claims.and_then(|c| c.scopes.as_ref()),
        "scopes",
        crate::model::default_scopes_claim(),
    );
    Some(Issuer {
        name: n.clone(),
        source: source?,
        cognito_style,
        app_clients,
        audiences,
        token_use,
        leeway,
        algorithms,
        jwks,
        groups_claim,
        scopes_claim,
    })
}

/// `host:port`, where host is an IP address or a DNS name.
fn target(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<String> {
    let text = ctx.text(s, key)?;
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Some(text);
    }
    let valid = text.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok_and(|p| p != 0)
            && !host.is_empty()
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    });
    if !valid {
        ctx.push(
            ctx.diag(&s.referenced, key, format!("invalid target `{text}`"))
                .help("write `host:port`, e.g. `10.0.1.10:8080` or `orders.internal:8080`"),
        );
        return None;
    }
    Some(text)
}

fn hash_key(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<HashKey> {
    let text = ctx.text(s, key)?;
    let parsed = match text.split_once(':') {
        Some(("header", h)) if !h.is_empty() => Some(HashKey::Header(h.to_ascii_lowercase())),
        Some(("claim", c)) if !c.is_empty() => Some(HashKey::Claim(c.to_owned())),
        None if text == "path" => Some(HashKey::Path),
        None if text == "client_ip" => Some(HashKey::ClientIp),
        _ => None,
    };
    if parsed.is_none() {
        ctx.push(
            ctx.diag(&s.referenced, key, format!("invalid hash key `{text}`"))
                .help("use `header:<name>`, `claim:<name>`, `path` or `client_ip`"),
        );
    }
    parsed
}

pub(super) fn upstream(ctx: &mut Ctx<'_>, name: &S, f: &UpstreamFile) -> Option<Upstream> {
    let n = &name.value;
    let key = format!("upstreams.{n}");
    if f.targets.value.is_empty() {
        ctx.push(
            ctx.diag(
                &f.targets.referenced,
                &format!("{key}.targets"),
                format!("upstream `{n}` has no targets"),
            )
            .help("list at least one `host:port`"),
        );
    }
    let targets: Vec<String> = f
        .targets
        .value
        .iter()
        .enumerate()
        .filter_map(|(i, t)| target(ctx, t, &format!("{key}.targets[{i}]")))
        .collect();
    for (i, t) in f.targets.value.iter().enumerate() {
        if f.targets.value.iter().take(i).any(|u| u.value == t.value) {
            ctx.error(
                &t.referenced,
                &format!("{key}.targets[{i}]"),
                format!("duplicate target `{}` in upstream `{n}`", t.value),
            );
        }
    }
    let balance_word = f
        .balance
        .as_ref()
        .and_then(|b| {
            ctx.choice(
                b,
                &format!("{key}.balance"),
                "balance",
                &["round_robin", "consistent_hash"],
            )
        })
        .unwrap_or("round_robin");
    let balance = match (balance_word, &f.hash_key) {
        ("consistent_hash", Some(h)) => {
            hash_key(ctx, h, &format!("{key}.hash_key")).map(Balance::ConsistentHash)
        }
        ("consistent_hash", None) => {
            let loc = f.balance.as_ref().map_or(name.referenced, |b| b.referenced);
            ctx.push(
                ctx.diag(
                    &loc,
                    &format!("{key}.balance"),
                    format!("upstream `{n}` uses `consistent_hash` without `hash_key`"),
                )
                .help("add `hash_key: claim:sub` (or `header:<name>`, `path`, `client_ip`)"),
            );
            None
        }
        (_, Some(h)) => {
            ctx.push(
                ctx.diag(
                    &h.referenced,
                    &format!("{key}.hash_key"),
                    "`hash_key` needs `balance: consistent_hash`",
                )
                .help("remove `hash_key`, or set `balance: consistent_hash`"),
            );
            None
        }
        _ => Some(Balance::RoundRobin),
    };
    let health_check = f.health_check.as_ref().and_then(|h| {
        let hkey = format!("{key}.health_check");
        let path = ctx.text(&h.path, &format!("{hkey}.path"))?;
        if !path.starts_with('/') {
            ctx.error(
                &h.path.referenced,
                &format!("{hkey}.path"),
                format!("health check path `{path}` does not start with `/`"),
            );
        }
        Some(HealthCheck {
            path,
            interval: ctx
                .duration(h.interval.as_ref(), &format!("{hkey}.interval"))
                .unwrap_or(Duration::from_secs(5)),
            timeout: ctx
                .duration(h.timeout.as_ref(), &format!("{hkey}.timeout"))
                .unwrap_or(Duration::from_secs(1)),
            healthy_threshold: h.healthy_threshold.as_ref().map_or(2, |t| t.value.max(1)),
            unhealthy_threshold: h.unhealthy_threshold.as_ref().map_or(3, |t| t.value.max(1)),
        })
    });
    let timeouts = f
        .timeouts
        .as_ref()
        .map(|t| Timeouts {
            connect: ctx.duration(t.connect.as_ref(), &format!("{key}.timeouts.connect")),
            read: ctx.duration(t.read.as_ref(), &format!("{key}.timeouts.read")),
            write: ctx.duration(t.write.as_ref(), &format!("{key}.timeouts.write")),
            idle: ctx.duration(t.idle.as_ref(), &format!("{key}.timeouts.idle")),
            total: super::total_timeout(ctx, t.total.as_ref(), &format!("{key}.timeouts.total")),
        })
        .unwrap_or_default();
    let tls = f
        .tls
        .as_ref()
        .map(|t| super::tls::upstream_tls(ctx, t, &format!("{key}.tls")));
    if targets.len() != f.targets.value.len() {
        return None;
    }
    Some(Upstream {
        name: n.clone(),
        targets,
        balance: balance?,
        health_check,
        timeouts,
        tls,
        h2: f.h2.as_ref().is_some_and(|b| b.value),
    })
}
