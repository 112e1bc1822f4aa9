//! `poolgate explain`: the route, roles and decision for one request, from claims.
//!
//! A token given to `explain` is decoded without verifying its signature: explain answers
//! "what would the policy do with these claims", not "is this token valid".

use base64::Engine;
use poolgate_authorizer::claims;
use poolgate_policies as pol;
use serde_json::{Map, Value, json};

/// Why explain could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("the token is not a JWS compact token (three base64url parts)")]
    TokenShape,
    #[error("the token payload is not a JSON object")]
    TokenPayload,
    #[error("--claims is not a JSON object: {0}")]
    Claims(String),
}

/// The claims of an unverified compact JWS.
pub fn token_claims(token: &str) -> Result<Map<String, Value>, ExplainError> {
    let mut parts = token.trim().split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ExplainError::TokenShape);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| ExplainError::TokenShape)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ExplainError::TokenPayload),
    }
}

/// Claims given as a JSON object on the command line.
pub fn parse_claims(text: &str) -> Result<Map<String, Value>, ExplainError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ExplainError::Claims("expected an object".to_owned())),
        Err(e) => Err(ExplainError::Claims(e.to_string())),
    }
}

/// The explanation as JSON: route, principal, roles, decision, reason, statement, status.
pub fn explain(
    policy: &pol::Config,
    host: &str,
    method: &str,
    raw_path: &str,
    claims: Option<&Map<String, Value>>,
) -> Value {
    let path = match pol::normalize_path(raw_path) {
        Ok(p) => p.into_owned(),
        Err(e) => {
            return json!({"path": raw_path, "allowed": false, "status": 400,
                          "reason": crate::gate::path_error_code(&e), "detail": e.to_string()});
        }
    };
    let host = match pol::Authority::parse(host.as_bytes()) {
        Ok(h) => h,
        Err(e) => {
            return json!({"host": host, "allowed": false, "status": 400,
                          "reason": e.code(), "detail": e.to_string()});
        }
    };
    let Some(m) = policy.match_route(&host, method, &path) else {
        return json!({"path": path, "allowed": false, "status": 404, "reason": "no_route"});
    };
    if let Some(other) = policy.shadowing_route(&host, method, &path, &m) {
        return json!({"path": path, "allowed": false, "status": 400, "reason": "path_ambiguous",
                      "route": m.route.name,
                      "detail": format!("another spelling of this path is judged by route `{}`", other.name)});
    }
    let route = m.route;
    // Explain takes the route's issuer (or the first one) as the token's: claims carry a URL.
    let issuer = route
        .auth
        .issuer
        .clone()
        .or_else(|| policy.issuers.first().map(|i| i.name.clone()))
        .unwrap_or_default();
    // Groups and scopes where that issuer puts them, read as the authorizer reads them.
    let (groups_at, scopes_at) = policy.issuer(&issuer).map_or_else(
        || {
            (
                pol::model::default_groups_claim(),
                pol::model::default_scopes_claim(),
            )
        },
        |i| (i.groups_claim.clone(), i.scopes_claim.clone()),
    );
    let Ok(lists) = claims
        .map(|c| claims::lists(c, groups_at.segments(), scopes_at.segments()))
        .transpose()
    else {
        return json!({"path": path, "route": route.name, "allowed": false, "status": 401,
                      "reason": "malformed",
                      "detail": format!("the groups at `{groups_at}` must be an array of strings, the scopes at `{scopes_at}` an array or a space-separated string")});
    };
    let principal = claims.zip(lists.as_ref()).map(|(c, l)| pol::Principal {
        issuer: &issuer,
        token_use: c.get("token_use").and_then(Value::as_str),
        groups: &l.groups,
        scopes: &l.scopes,
        has_groups_claim: l.claimed.groups,
        has_scopes_claim: l.claimed.scopes,
        claims: c,
    });
    let d = policy.decide(&m, method, &path, principal.as_ref());
    let status = if d.allowed { 200 } else { d.reason.status() };
    json!({
        "path": path,
        "route": route.name,
        "upstream": route.upstream,
        "public": route.public,
        "principal": claims.zip(lists.as_ref()).map(|(c, l)| json!({
            "issuer": issuer,
            "sub": c.get("sub"),
            "token_use": c.get("token_use"),
            "groups": l.groups,
            "scopes": l.scopes,
        })),
        "roles": d.roles,
        "allowed": d.allowed,
        "status": status,
        "reason": d.reason.code(),
        "statement": d.statement.map(|s| json!({
            "role": s.role,
            "effect": format!("{:?}", s.effect).to_lowercase(),
            "index": s.index,
        })),
    })
}

/// The explanation for people.
pub fn human(v: &Value) -> String {
    let s = |k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    };
    let mut out = String::new();
    out.push_str(&format!("path:      {}\n", s("path")));
    out.push_str(&format!(
        "route:     {} (upstream {})\n",
        s("route"),
        s("upstream")
    ));
    if let Some(p) = v.get("principal").filter(|p| !p.is_null()) {
        out.push_str(&format!("principal: {p}\n"));
    } else {
        out.push_str("principal: none (no token)\n");
    }
    out.push_str(&format!("roles:     {}\n", s("roles")));
    let verdict = if v.get("allowed") == Some(&Value::Bool(true)) {
        "allow"
    } else {
        "deny"
    };
    out.push_str(&format!(
        "decision:  {verdict} ({}) → {}\n",
        s("reason"),
        s("status")
    ));
    if let Some(st) = v.get("statement").filter(|x| !x.is_null()) {
        out.push_str(&format!(
            "statement: role `{}` {}[{}]\n",
            st.get("role").and_then(Value::as_str).unwrap_or("?"),
            st.get("effect").and_then(Value::as_str).unwrap_or("?"),
            st.get("index")
                .map_or_else(|| "?".to_owned(), Value::to_string),
        ));
    }
    out
}
