//! `TestIssuer`: a Cognito-like user pool on 127.0.0.1 — keys, a JWKS server and a minter.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::key::{KeyGenError, TestKey, jwks_of};
use super::mint::Claims;
use super::server::{Behaviour, JwksServer};
use super::unix_now;
use crate::config::{IssuerConfig, JwksTimings, KeySource, TokenUseRequirement};

/// Failures of starting a test issuer.
#[derive(Debug, thiserror::Error)]
pub enum TestUtilError {
    /// Binding the server failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Generating a key failed.
    #[error(transparent)]
    Key(#[from] KeyGenError),
}

struct Keys {
    published: Vec<Arc<TestKey>>,
    access: Arc<TestKey>,
    id: Arc<TestKey>,
    serial: u32,
}

/// A Cognito-like issuer: two RSA-2048 keys (access and ID tokens are signed by different keys,
/// as in a real pool), served as a JWKS at `{issuer}/.well-known/jwks.json`, where
/// `issuer = http://127.0.0.1:PORT/{pool}` (the cognito-local shape).
pub struct TestIssuer {
    /// The JWKS server (change its behaviour, count its fetches).
    pub server: JwksServer,
    /// The `iss` of minted tokens.
    pub issuer: String,
    /// The JWKS url.
    pub jwks_url: String,
    /// The app client id minted tokens carry.
    pub client_id: String,
    keys: Mutex<Keys>,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TestIssuer {
    /// Generates two keys and starts the server on the current tokio runtime.
    pub async fn start() -> Result<TestIssuer, TestUtilError> {
        TestIssuer::start_with_pool("us-east-1_TestPool").await
    }

    /// As `start`, with a chosen pool id (the last path segment of the issuer).
    pub async fn start_with_pool(pool: &str) -> Result<TestIssuer, TestUtilError> {
        let access = Arc::new(TestKey::rsa("access-1")?);
        let id = Arc::new(TestKey::rsa("id-1")?);
        let server = JwksServer::start(jwks_of([&*access, &*id])).await?;
        let issuer = server.url(&format!("/{pool}"));
        Ok(TestIssuer {
            jwks_url: format!("{issuer}/.well-known/jwks.json"),
            issuer,
            server,
            client_id: "testclient0123456789abcdef".to_owned(),
            keys: Mutex::new(Keys {
                published: vec![access.clone(), id.clone()],
                access,
                id,
                serial: 1,
            }),
        })
    }

    fn with_keys<R>(&self, f: impl FnOnce(&mut Keys) -> R) -> R {
        f(&mut self.keys.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn publish(&self, keys: &Keys) {
        self.server
            .set_jwks(jwks_of(keys.published.iter().map(|k| &**k)));
    }

    /// An issuer config for this pool: explicit issuer and JWKS url, Cognito-style, this app
    /// client, any token use, and short JWKS timings suited to tests (refresh clamped to
    /// [1 s, 60 s], unknown-kid interval 1 s, timeouts 1 s/2 s).
    pub fn config(&self, name: &str) -> IssuerConfig {
        IssuerConfig {
            name: name.to_owned(),
            source: KeySource::Explicit {
                issuer: self.issuer.clone(),
                jwks_url: self.jwks_url.clone(),
            },
            cognito_style: true,
            app_clients: vec![self.client_id.clone()],
            token_use: TokenUseRequirement::Any,
            jwks: JwksTimings {
                refresh_default: Duration::from_secs(60),
                refresh_min: Duration::from_secs(1),
                refresh_max: Duration::from_secs(60),
                retry_interval: Duration::from_millis(200),
                unknown_kid_min_interval: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
                total_timeout: Duration::from_secs(2),
                ..JwksTimings::default()
            },
            ..IssuerConfig::default()
        }
    }

    /// Access-token claims for `user` (1 h from now).
    pub fn access_claims(&self, user: &str, groups: &[&str], scopes: &[&str]) -> Claims {
        Claims::access(
            &self.issuer,
            &self.client_id,
            user,
            groups,
            scopes,
            unix_now(),
        )
    }

    /// ID-token claims for `user` (1 h from now).
    pub fn id_claims(&self, user: &str, groups: &[&str]) -> Claims {
        Claims::id(&self.issuer, &self.client_id, user, groups, unix_now())
    }

    /// A signed access token.
    pub fn mint_access(&self, user: &str, groups: &[&str], scopes: &[&str]) -> String {
        self.sign_access(self.access_claims(user, groups, scopes))
    }

    /// A signed ID token.
    pub fn mint_id(&self, user: &str, groups: &[&str]) -> String {
        self.sign_id(self.id_claims(user, groups))
    }

    /// Signs claims with the current access-token key.
    pub fn sign_access(&self, claims: Claims) -> String {
        self.with_keys(|k| k.access.clone())
            .sign_claims(&claims.into_value())
    }

    /// Signs claims with the current ID-token key.
    pub fn sign_id(&self, claims: Claims) -> String {
        self.with_keys(|k| k.id.clone())
            .sign_claims(&claims.into_value())
    }

    /// Signs arbitrary header and claims with the current access-token key, whatever the header
    /// says (`alg`, `kid`, `typ`, `jku`...).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        self.with_keys(|k| k.access.clone())
            .sign_token(header, claims)
    }

    /// Generates a new access key and a new ID key, publishes them beside the old ones, and signs
    /// with them from now on. Returns the new access kid.
    pub fn rotate(&self) -> Result<String, TestUtilError> {
        let serial = self.with_keys(|k| {
            k.serial += 1;
            k.serial
        });
        let access = Arc::new(TestKey::rsa(&format!("access-{serial}"))?);
        let id = Arc::new(TestKey::rsa(&format!("id-{serial}"))?);
        let kid = access.kid.clone();
        self.with_keys(|k| {
            k.published.push(access.clone());
            k.published.push(id.clone());
            k.access = access;
            k.id = id;
            self.publish(k);
        });
        Ok(kid)
    }

    /// Publishes an extra key (it does not become a signing key of `mint_*`).
    pub fn add_key(&self, key: Arc<TestKey>) {
        self.with_keys(|k| {
            k.published.push(key);
            self.publish(k);
        });
    }

    /// Stops publishing the key `kid` (tokens signed with it can still be minted).
    pub fn remove_key(&self, kid: &str) {
        self.with_keys(|k| {
            k.published.retain(|key| key.kid != kid);
            self.publish(k);
        });
    }

    /// The kids currently published.
    pub fn published_kids(&self) -> Vec<String> {
        self.with_keys(|k| k.published.iter().map(|key| key.kid.clone()).collect())
    }

    /// The current access-token signing key.
    pub fn access_key(&self) -> Arc<TestKey> {
        self.with_keys(|k| k.access.clone())
    }

    /// Changes how the JWKS endpoint answers.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.server.set_behaviour(behaviour);
    }

    /// JWKS fetches received so far.
    pub fn fetches(&self) -> usize {
        self.server.fetches()
    }
}
