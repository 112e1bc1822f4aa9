//! `${NAME}` and `${NAME:-default}` substitution in string values.

/// Why a value could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvError {
    /// `${NAME}` with `NAME` unset and no default.
    Missing(String),
    /// `${` without a valid name and closing `}`.
    Malformed,
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Replaces every `${NAME}` (or `${NAME:-default}`) using `lookup`; `$$` is a literal `$`.
pub fn substitute(raw: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    if !raw.contains('$') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let after = rest.get(pos + 1..).unwrap_or("");
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(EnvError::Malformed)?;
            let inner = body.get(..end).unwrap_or("");
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !valid_name(name) {
                return Err(EnvError::Malformed);
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(EnvError::Missing(name.to_owned())),
            }
            rest = body.get(end + 1..).unwrap_or("");
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOST").then(|| "example.com".to_owned())
    }

    #[test]
    fn substitutes() {
        assert_eq!(substitute("plain", &env).unwrap(), "plain");
        assert_eq!(
            substitute("https://${HOST}/x", &env).unwrap(),
            "https://example.com/x"
        );
        assert_eq!(substitute("${NOPE:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(
            substitute("${HOST:-fallback}", &env).unwrap(),
            "example.com"
        );
        assert_eq!(substitute("cost $$5 $x", &env).unwrap(), "cost $5 $x");
        assert_eq!(
            substitute("${NOPE}", &env),
            Err(EnvError::Missing("NOPE".into()))
        );
        assert_eq!(substitute("${HOST", &env), Err(EnvError::Malformed));
        assert_eq!(substitute("${1X}", &env), Err(EnvError::Malformed));
    }
}
