//! What admission keeps in a verified identity's memo: its identity headers and its signed
//! assertion. The token cache returns the same identity for every request with the same token,
//! so building these once per identity takes them off the path of nearly every request.
//!
//! Kept values are reused only by the gate state that made them (its `generation`): a reload
//! may change the names, encodings and signing keys behind them.

use std::sync::Arc;

use poolgate_authorizer::Identity;

use crate::admission::{IdentityClaims, identity_view};
use crate::headers::{self, HeaderError, IdentityHeaders};
use crate::signed_identity::{SignError, SignedHeaders, Values};
use crate::state::GateState;

/// One identity's kept values, for one gate state.
struct Kept {
    generation: u64,
    identity: Option<Arc<IdentityHeaders>>,
    signed: Option<Arc<Values>>,
}

/// The identity headers for `id` under `state`: kept ones when they were built before, else
/// built (and kept, unless they depend on the request's `roles`).
pub(crate) fn identity_headers(
    state: &GateState,
    id: &Identity,
    roles: &[&str],
) -> Result<Arc<IdentityHeaders>, HeaderError> {
    let kept = kept(state, id);
    if let Some(headers) = kept.as_ref().and_then(|k| k.identity.clone()) {
        return Ok(headers);
    }
    let claims = IdentityClaims(&id.claims);
    let built = Arc::new(headers::identity_headers(
        &identity_view(id, roles, &claims),
        &state.identity_names,
    )?);
    if !state.identity_names.depend_on_roles() {
        keep(
            state,
            id,
            Some(built.clone()),
            kept.and_then(|k| k.signed.clone()),
        );
    }
    Ok(built)
}

/// The signed identity headers for `id`, verified from `token`, at `now`: the kept assertion
/// while it is fresh, else a new one (kept).
pub(crate) fn signed_headers(
    state: &GateState,
    signer: &crate::signed_identity::SignedIdentity,
    token: &str,
    id: &Identity,
    now: u64,
    forward_token: bool,
) -> Result<SignedHeaders, SignError> {
    let kept = kept(state, id);
    let values = match kept.as_ref().and_then(|k| k.signed.clone()) {
        Some(values) if values.fit(token, now) => values,
        _ => {
            let made = Arc::new(signer.values(token, id, now)?);
            keep(
                state,
                id,
                kept.and_then(|k| k.identity.clone()),
                Some(made.clone()),
            );
            made
        }
    };
    Ok(SignedHeaders {
        values,
        forward_token,
    })
}

fn kept(state: &GateState, id: &Identity) -> Option<Arc<Kept>> {
    id.memo
        .get::<Kept>()
        .filter(|k| k.generation == state.generation)
}

fn keep(
    state: &GateState,
    id: &Identity,
    identity: Option<Arc<IdentityHeaders>>,
    signed: Option<Arc<Values>>,
) {
    id.memo.set(Arc::new(Kept {
        generation: state.generation,
        identity,
        signed,
    }));
}
