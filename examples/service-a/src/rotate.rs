//! `POST /rotate`: a new signing key, published before it signs.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use svcauth_jwks::JwsSigner;

use crate::{AppState, error};

#[derive(Deserialize)]
pub(crate) struct RotateQuery {
    #[serde(default)]
    now: Option<String>,
}

/// Rotates the signing key the safe way: the next key is published at
/// once and signs only after the overlap, when every verifier's cached key
/// set holds it. With `?now=true`, at once (verifiers then meet a kid they
/// have not fetched yet, and refuse it until their unknown-kid cooldown
/// lets them refetch).
pub(crate) async fn rotate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<RotateQuery>,
) -> Response {
    if !rotate_allowed(peer, state.allow_remote_rotate) {
        return error(
            StatusCode::FORBIDDEN,
            "rotation is accepted from loopback only".into(),
        );
    }
    let now = matches!(q.now.as_deref(), Some("true" | "1"));
    let ring_state = state.ring.state();
    let old = ring_state.current().kid().to_owned();
    if let Some(next) = ring_state.next() {
        return error(
            StatusCode::CONFLICT,
            format!(
                "a rotation is under way: {} is published and signs soon",
                next.kid()
            ),
        );
    }
    let key = match state.keys.next().await {
        Ok(k) => k,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let new = key.kid().to_owned();
    // The old key stays published while tokens it signed can be presented.
    let retire_for = state.lifetime + Duration::from_secs(60);
    if now {
        if let Err(e) = state.ring.rotate(key, retire_for) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        state.keys.sign_with_new_key(&state.signer);
        tracing::info!(old = %old, new = %new, "signing key rotated at once");
        return Json(json!({
            "old_kid": old,
            "new_kid": new,
            "signing_kid": new,
            "published": state.ring.state().published_kids(),
            "message": "the new key signs now; verifiers that have not fetched it yet refuse its tokens until their unknown-kid cooldown lets them refetch",
        }))
        .into_response();
    }
    if let Err(e) = state.ring.add_next(key) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let overlap = state.rotation_overlap;
    let (ring, signer, keys) = (state.ring.clone(), state.signer.clone(), state.keys.clone());
    tokio::spawn(async move {
        tokio::time::sleep(overlap).await;
        match ring.promote_next(retire_for) {
            Ok(()) => {
                keys.sign_with_new_key(&signer);
                tracing::info!(kid = %ring.signer().kid(), "next key promoted: it signs from now on");
            }
            Err(e) => tracing::warn!(error = %e, "could not promote the next key"),
        }
    });
    tracing::info!(old = %old, next = %new, overlap_secs = overlap.as_secs(), "next key published");
    Json(json!({
        "old_kid": old,
        "new_kid": new,
        "signing_kid": old,
        "promotes_in_secs": overlap.as_secs(),
        "published": state.ring.state().published_kids(),
        "message": format!(
            "{new} is published now and signs in {} s, once every verifier's cached key set holds it; {old} stays published {} s after that",
            overlap.as_secs(),
            retire_for.as_secs()
        ),
    }))
    .into_response()
}

/// `/rotate` is for operators on the host, unless opened up by flag.
pub(crate) fn rotate_allowed(peer: SocketAddr, allow_remote: bool) -> bool {
    allow_remote || peer.ip().is_loopback()
}
