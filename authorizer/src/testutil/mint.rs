//! Cognito-shaped claims for tests, per shared COGNITO.md.

use serde_json::{Map, Value, json};

/// What goes into a minted token. Start from `Claims::access` or `Claims::id`, adjust, then
/// `into_value`.
#[derive(Debug, Clone)]
pub struct Claims(pub Map<String, Value>);

fn uuid_like(seed: &str) -> String {
    // Deterministic per user, shaped like a UUID, so `sub` is stable across mints.
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, seed.as_bytes());
    let h: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or("0").to_owned();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    uuid_like(&format!("{b:?}"))
}

impl Claims {
    /// An access token's claims for `user` in `groups` with `scopes`, valid from `now` for 1 h.
    pub fn access(
        iss: &str,
        client_id: &str,
        user: &str,
        groups: &[&str],
        scopes: &[&str],
        now: u64,
    ) -> Claims {
        let mut m = Map::new();
        m.insert("sub".into(), json!(uuid_like(user)));
        if !groups.is_empty() {
            m.insert("cognito:groups".into(), json!(groups));
        }
        m.insert("iss".into(), json!(iss));
        m.insert("client_id".into(), json!(client_id));
        m.insert("origin_jti".into(), json!(random_id()));
        m.insert("event_id".into(), json!(random_id()));
        m.insert("token_use".into(), json!("access"));
        m.insert("scope".into(), json!(scopes.join(" ")));
        m.insert("auth_time".into(), json!(now));
        m.insert("exp".into(), json!(now + 3600));
        m.insert("iat".into(), json!(now));
        m.insert("jti".into(), json!(random_id()));
        m.insert("username".into(), json!(user));
        m.insert("version".into(), json!(2));
        Claims(m)
    }

    /// An ID token's claims for `user` in `groups`, valid from `now` for 1 h.
    pub fn id(iss: &str, client_id: &str, user: &str, groups: &[&str], now: u64) -> Claims {
        let mut m = Map::new();
        m.insert("sub".into(), json!(uuid_like(user)));
        if !groups.is_empty() {
            m.insert("cognito:groups".into(), json!(groups));
        }
        m.insert("email_verified".into(), json!(true));
        m.insert("iss".into(), json!(iss));
        m.insert("cognito:username".into(), json!(user));
        m.insert("origin_jti".into(), json!(random_id()));
        m.insert("aud".into(), json!(client_id));
        m.insert("event_id".into(), json!(random_id()));
        m.insert("token_use".into(), json!("id"));
        m.insert("auth_time".into(), json!(now));
        m.insert("exp".into(), json!(now + 3600));
        m.insert("iat".into(), json!(now));
        m.insert("jti".into(), json!(random_id()));
        m.insert("email".into(), json!(format!("{user}@example.com")));
        Claims(m)
    }

    /// Sets (or replaces) a claim.
    pub fn set(mut self, name: &str, value: Value) -> Claims {
        self.0.insert(name.to_owned(), value);
        self
    }

    /// Removes a claim.
    pub fn remove(mut self, name: &str) -> Claims {
        self.0.remove(name);
        self
    }

    /// The claims as a JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}
