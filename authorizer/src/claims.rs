//! Groups and scopes where an issuer puts them: a path of member names into the claims (the
//! policy writes it as a JSON Pointer), and the value there read as a list of strings.

use serde_json::{Map, Value};

use crate::identity::ClaimedLists;

/// The claim is there but not of a shape this reader accepts: the token is malformed for its
/// issuer, never read as an empty list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("claim has the wrong shape")]
pub struct WrongShape;

/// The value at `path` (member names, outermost first; an all-digit name also indexes an
/// array): `None` when a member or element is missing, `WrongShape` when a step meets a value
/// it cannot go into (`realm_access` a string where `/realm_access/roles` is read).
pub fn at<'c>(
    claims: &'c Map<String, Value>,
    path: &[String],
) -> Result<Option<&'c Value>, WrongShape> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let mut v = claims.get(first);
    for seg in rest {
        v = match v {
            None => return Ok(None),
            Some(Value::Object(m)) => m.get(seg),
            Some(Value::Array(items)) => items.get(seg.parse::<usize>().map_err(|_| WrongShape)?),
            Some(_) => return Err(WrongShape),
        };
    }
    Ok(v)
}

/// An identity's groups and scopes, read where its issuer puts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lists {
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    /// Whether each claim was there at all: an absent claim matches no rule.
    pub claimed: ClaimedLists,
}

/// The groups at `groups_at` (an array of strings) and the scopes at `scopes_at` (an array or
/// a space-separated string); `WrongShape` for any other shape on the way or at the end.
pub fn lists(
    claims: &Map<String, Value>,
    groups_at: &[String],
    scopes_at: &[String],
) -> Result<Lists, WrongShape> {
    let groups = at(claims, groups_at)?;
    let scopes = at(claims, scopes_at)?;
    Ok(Lists {
        claimed: ClaimedLists {
            groups: groups.is_some(),
            scopes: scopes.is_some(),
        },
        groups: array(groups)?,
        scopes: strings(scopes)?,
    })
}

/// Groups: an array of strings (absent: none). `Err` for any other shape, a string included:
/// the token is malformed for this issuer, never read as an empty list.
pub fn array(value: Option<&Value>) -> Result<Vec<String>, WrongShape> {
    match value {
        Some(Value::String(_)) => Err(WrongShape),
        other => strings(other),
    }
}

/// Scopes: an array of strings (Okta's `scp`), or one string split on spaces (OAuth's `scope`,
/// Entra's `scp`). `Err` for any other shape.
pub fn strings(value: Option<&Value>) -> Result<Vec<String>, WrongShape> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(WrongShape))
            .collect(),
        Some(Value::String(s)) => Ok(s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(_) => Err(WrongShape),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn paths_and_shapes() {
        let c = json!({
            "cognito:groups": ["a", "b"],
            "realm_access": {"roles": ["r1", "r2"]},
            "scp": ["read", "write"],
            "scope": "openid  email",
            "https://example.com/roles": ["admin"],
            "list": [{"x": "y"}],
            "n": 7,
        });
        let c = c.as_object().unwrap();
        let get = |p: &[&str]| strings(at(c, &path(p))?);
        assert_eq!(get(&["cognito:groups"]).unwrap(), ["a", "b"]);
        assert_eq!(get(&["realm_access", "roles"]).unwrap(), ["r1", "r2"]);
        assert_eq!(get(&["scp"]).unwrap(), ["read", "write"]);
        assert_eq!(get(&["scope"]).unwrap(), ["openid", "email"]);
        assert_eq!(get(&["https://example.com/roles"]).unwrap(), ["admin"]);
        assert_eq!(get(&["list", "0", "x"]).unwrap(), ["y"]);
        assert_eq!(get(&["absent"]).unwrap(), Vec::<String>::new());
        assert_eq!(
            get(&["realm_access", "absent"]).unwrap(),
            Vec::<String>::new()
        );
        assert!(get(&["n"]).is_err());
        assert!(get(&["realm_access"]).is_err());
        // A step into a scalar, or a name where an array is, is the wrong shape, not absence.
        assert!(get(&["scope", "x"]).is_err());
        assert!(get(&["list", "x"]).is_err());
        assert_eq!(get(&["list", "5", "x"]).unwrap(), Vec::<String>::new());
        assert!(strings(Some(&json!(["a", 1]))).is_err());
        assert!(array(Some(&json!("admins"))).is_err());
        assert_eq!(array(Some(&json!(["admins"]))).unwrap(), ["admins"]);
    }
}
