//! axum extractors (feature `axum`): [`Caller`] for the verified caller,
//! [`CallerClaims`] for your own claims type, and `Option<..>` of either for
//! routes where authentication is optional.

use std::fmt;

use std::ops::Deref;
use std::sync::Arc;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::claims::{Authentication, VerifiedClaims};
use crate::error::ErrorKind;
use crate::rejection::challenge;
use crate::txn::Transaction;

/// The verified caller: `iss`, `sub`, `aud`, `act`, `jti`, expiry and the
/// rest of [`VerifiedClaims`], by `Deref`.
///
/// ```
/// use svcauth_verify::Caller;
///
/// async fn whoami(caller: Caller) -> String {
///     format!("{} as {}", caller.iss(), caller.sub())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<VerifiedClaims>);

impl Deref for Caller {
    type Target = VerifiedClaims;

    fn deref(&self) -> &VerifiedClaims {
        &self.0
    }
}

/// Your own claims type `T`, read from the verified payload.
///
/// ```
/// use serde::Deserialize;
/// use svcauth_verify::CallerClaims;
///
/// #[derive(Deserialize)]
/// struct Tenant { tenant: String }
///
/// async fn handler(CallerClaims(claims): CallerClaims<Tenant>) -> String {
///     claims.tenant
/// }
/// ```
#[derive(Debug, Clone)]
pub struct CallerClaims<T>(pub T);

/// Why an extractor failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The request did not pass through a [`crate::VerifyLayer`]: a
    /// programming error, answered 500.
    LayerMissing,
    /// An optional route got no token, but the handler requires a caller.
    Unauthenticated,
    /// The verified claims do not fit the handler's claims type.
    ClaimsMismatch(String),
    /// The handler needs a verified `Txn-Token` and the request has none
    /// (require it on the route with [`crate::VerifyLayer::require_txn_token`]).
    NoTransaction,
    /// The Txn-Token's `tctx` does not fit the handler's type.
    ContextMismatch(String),
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthRejection::LayerMissing => {
                f.write_str("svcauth VerifyLayer is not installed in front of this handler")
            }
            AuthRejection::Unauthenticated => f.write_str("a bearer token is required"),
            AuthRejection::ClaimsMismatch(e) => {
                write!(f, "the token's claims do not fit this route: {e}")
            }
            AuthRejection::NoTransaction => f.write_str("a Txn-Token is required"),
            AuthRejection::ContextMismatch(e) => {
                write!(f, "the Txn-Token's tctx does not fit this route: {e}")
            }
        }
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        tracing::trace!(rejection = %self, "svcauth extractor rejected the request");
        let (status, challenge) = match &self {
            AuthRejection::LayerMissing => (StatusCode::INTERNAL_SERVER_ERROR, None),
            AuthRejection::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, challenge(ErrorKind::MissingToken))
            }
            AuthRejection::ClaimsMismatch(_) => (
                StatusCode::UNAUTHORIZED,
                challenge(ErrorKind::InvalidClaims),
            ),
            AuthRejection::NoTransaction | AuthRejection::ContextMismatch(_) => {
                (StatusCode::FORBIDDEN, None)
            }
        };
        let mut response =
            Response::new(axum_core::body::Body::from(Bytes::from(self.to_string())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(challenge) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

fn authentication(parts: &Parts) -> Result<Option<&Arc<VerifiedClaims>>, AuthRejection> {
    match parts.extensions.get::<Authentication>() {
        None => Err(AuthRejection::LayerMissing),
        Some(Authentication(claims)) => Ok(claims.as_ref()),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AuthRejection> {
        authentication(parts)?
            .map(|c| Caller(c.clone()))
            .ok_or(AuthRejection::Unauthenticated)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, AuthRejection> {
        Ok(authentication(parts)?.map(|c| Caller(c.clone())))
    }
}

fn read<T: DeserializeOwned>(claims: &VerifiedClaims) -> Result<CallerClaims<T>, AuthRejection> {
    claims
        .deserialize()
        .map(CallerClaims)
        .map_err(|e| AuthRejection::ClaimsMismatch(e.to_string()))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for CallerClaims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AuthRejection> {
        read(authentication(parts)?.ok_or(AuthRejection::Unauthenticated)?)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequestParts<S> for CallerClaims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, AuthRejection> {
        authentication(parts)?.map(|c| read(c)).transpose()
    }
}

/// The Txn-Token's `tctx` (the transaction's immutable authorisation
/// context) as your own type.
///
/// ```
/// use serde::Deserialize;
/// use svcauth_verify::TransactionContext;
///
/// #[derive(Deserialize)]
/// struct Order { tenant: String, roles: Vec<String> }
///
/// async fn handler(TransactionContext(order): TransactionContext<Order>) -> String {
///     format!("{} as {:?}", order.tenant, order.roles)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TransactionContext<T>(pub T);

fn transaction(parts: &Parts) -> Result<Option<&Transaction>, AuthRejection> {
    if parts.extensions.get::<Authentication>().is_none() {
        return Err(AuthRejection::LayerMissing);
    }
    Ok(parts.extensions.get::<Transaction>())
}

impl<S: Send + Sync> FromRequestParts<S> for Transaction {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AuthRejection> {
        transaction(parts)?
            .cloned()
            .ok_or(AuthRejection::NoTransaction)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Transaction {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, AuthRejection> {
        Ok(transaction(parts)?.cloned())
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for TransactionContext<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AuthRejection> {
        let txn = transaction(parts)?.ok_or(AuthRejection::NoTransaction)?;
        txn.tctx_as()
            .map(TransactionContext)
            .map_err(|e| AuthRejection::ContextMismatch(e.to_string()))
    }
}
