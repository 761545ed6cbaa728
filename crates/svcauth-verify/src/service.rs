//! [`Verify`]: the service the [`crate::VerifyLayer`] wraps around yours.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use svcauth_core::BodyFromBytes;
use tower_service::Service;

use crate::claims::Authentication;
use crate::error::{ErrorKind, VerifyError};
use crate::future::ResponseFuture;
use crate::layer::{RouteOptions, VerifyLayer};
use crate::policy::RequestTarget;
use crate::rejection;
use crate::txn::{Transaction, TxnFast};
use crate::verifier::Verifier;

/// The verifying service. A rejection is a response, never an `Err`: the
/// error type stays the inner service's.
///
/// See the crate docs for an example.
#[derive(Clone, Debug)]
pub struct Verify<S> {
    inner: S,
    verifier: Verifier,
    options: Arc<RouteOptions>,
    /// Whether Txn-Tokens are looked at here: the verifier trusts them or
    /// the route requires one. When not, the fast path skips them.
    txn: bool,
}

impl<S> Verify<S> {
    /// The ready inner service, for a future to call; a fresh clone stays
    /// here (tower's "be careful when cloning inner services").
    fn take_ready_inner(&mut self) -> S
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }

    pub(crate) fn new(inner: S, verifier: Verifier, options: Arc<RouteOptions>) -> Self {
        let txn = verifier.trust_domain().is_some() || options.rules.requires_txn();
        Verify {
            inner,
            verifier,
            options,
            txn,
        }
    }

    /// A [`VerifyLayer`] with default options for `verifier`.
    pub fn layer(verifier: Verifier) -> VerifyLayer {
        VerifyLayer::new(verifier)
    }
}

impl<S, B, ResBody> Service<Request<B>> for Verify<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: BodyFromBytes + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: BodyFromBytes + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (verifier, options) = (&self.verifier, &self.options);
        if verifier.workloads().is_some() && crate::wimse::presents_workload(request.headers()) {
            return self.admit_workload(request);
        }
        // Fast path: a token verified before, on a route without binding,
        // found by the header's raw bytes (see `bearer_token_bytes`), with
        // its Txn-Token (if any) cached too.
        if !options.rules.require_binding
            && let Some(raw) = svcauth_core::bearer_token_bytes(request.headers())
            && let Some((claims, now)) = verifier.cached_at(raw)
        {
            if let Err(error) = options.rules.authorize(&claims) {
                return self.reject(error, request.headers());
            }
            match self.settle_txn(request.headers(), || now) {
                Err(error) => return self.reject(error, request.headers()),
                Ok(TxnFast::Ready(txn)) => {
                    request
                        .extensions_mut()
                        .insert(Authentication(Some(claims)));
                    return self.hand_on(request, txn);
                }
                Ok(TxnFast::Verify) => {}
            }
        }

        let token = match svcauth_core::bearer_token(request.headers())
            .map_err(|_| ErrorKind::InvalidRequest)
        {
            Ok(Some(token)) => Some(token.to_owned()),
            Ok(None) if options.optional => {
                match self.settle_txn(request.headers(), || verifier.now()) {
                    Err(error) => return self.reject(error, request.headers()),
                    Ok(TxnFast::Ready(txn)) => {
                        request.extensions_mut().insert(Authentication(None));
                        return self.hand_on(request, txn);
                    }
                    Ok(TxnFast::Verify) => None,
                }
            }
            Ok(None) => return self.reject(ErrorKind::MissingToken.into(), request.headers()),
            Err(kind) => return self.reject(kind.into(), request.headers()),
        };

        // Slow path.
        let mut inner = self.take_ready_inner();
        let verifier = self.verifier.clone();
        let options = self.options.clone();
        let grpc = rejection::is_grpc(request.headers());
        ResponseFuture::slow(Box::pin(async move {
            match admit(&verifier, &options, token.as_deref(), request).await {
                Ok((request, None)) => inner.call(request).await,
                Ok((request, Some(txn))) => {
                    txn.token().clone().scope_call(|| inner.call(request)).await
                }
                Err(error) => Ok(rejection::response(error, &options.body, grpc)),
            }
        }))
    }
}

impl<S> Verify<S> {
    /// The fast path's reading of the request's Txn-Token: nothing to read
    /// where no Txn-Token is trusted or required (the clock not even read).
    #[inline]
    fn settle_txn(
        &self,
        headers: &http::HeaderMap,
        now: impl FnOnce() -> u64,
    ) -> Result<TxnFast, VerifyError> {
        match self.txn {
            false => Ok(TxnFast::Ready(None)),
            true => self.verifier.txn_fast(headers, &self.options.rules, now()),
        }
    }

    /// Hands an admitted request on, in its transaction if it has one.
    #[inline]
    fn hand_on<B, ResBody>(
        &mut self,
        request: Request<B>,
        txn: Option<Transaction>,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>, Response = Response<ResBody>>,
    {
        match txn {
            None => ResponseFuture::inner(self.inner.call(request)),
            Some(txn) => self.call_in_transaction(request, txn),
        }
    }

    /// Hands the request on with its verified Txn-Token in its extensions
    /// and current while the inner service handles it.
    fn call_in_transaction<B, ResBody>(
        &mut self,
        mut request: Request<B>,
        txn: Transaction,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>, Response = Response<ResBody>>,
    {
        let token = txn.token().clone();
        request.extensions_mut().insert(txn);
        let inner = &mut self.inner;
        ResponseFuture::scoped(token.scope_call(|| inner.call(request)))
    }

    /// A request with WIMSE credentials: the WIT and its proof decide, on
    /// the slow path (the proof is new on every request and accepted once).
    fn admit_workload<B, ResBody>(&mut self, request: Request<B>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        B: Send + 'static,
        ResBody: BodyFromBytes + Send + 'static,
    {
        let mut inner = self.take_ready_inner();
        let verifier = self.verifier.clone();
        let options = self.options.clone();
        let grpc = rejection::is_grpc(request.headers());
        ResponseFuture::slow(Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let target = RequestTarget {
                method: &parts.method,
                uri: &parts.uri,
                headers: &parts.headers,
            };
            let admitted = match verifier.check_workload(target, &options.rules).await {
                Ok(claims) => admit_txn(&verifier, &options, &mut parts)
                    .await
                    .map(|txn| (claims, txn)),
                Err(error) => Err(error),
            };
            match admitted {
                Ok((claims, txn)) => {
                    tracing::debug!(workload = claims.sub(), "workload proof accepted");
                    parts.extensions.insert(Authentication(Some(claims)));
                    if let Some(txn) = txn {
                        let request = Request::from_parts(parts, body);
                        return txn.token().clone().scope_call(|| inner.call(request)).await;
                    }
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(error) => Ok(rejection::response(error, &options.body, grpc)),
            }
        }))
    }

    fn reject<F, ResBody, E>(
        &self,
        error: VerifyError,
        headers: &http::HeaderMap,
    ) -> ResponseFuture<F>
    where
        F: std::future::Future<Output = Result<Response<ResBody>, E>>,
        ResBody: BodyFromBytes,
    {
        self.verifier.reject(&error);
        let grpc = rejection::is_grpc(headers);
        ResponseFuture::ready(Ok(rejection::response(error, &self.options.body, grpc)))
    }
}

/// Runs the verifier's one pipeline for the request (its token, if any,
/// then its Txn-Token); the body is read only for a bound token, and handed
/// on intact either way.
async fn admit<B>(
    verifier: &Verifier,
    options: &RouteOptions,
    token: Option<&str>,
    request: Request<B>,
) -> Result<(Request<B>, Option<Transaction>), VerifyError>
where
    B: BodyFromBytes + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = request.into_parts();
    let Some(token) = token else {
        parts.extensions.insert(Authentication(None));
        let txn = admit_txn(verifier, options, &mut parts).await?;
        return Ok((Request::from_parts(parts, body), txn));
    };
    let mut body = Some(body);
    let target = RequestTarget {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
    };
    let limit = verifier.max_body_bytes();
    let read_body = || {
        let taken = body.take();
        async move {
            let body = taken.ok_or(ErrorKind::BodyUnreadable)?;
            match Limited::new(body, limit).collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
                Err(e) if e.is::<LengthLimitError>() => Err(ErrorKind::BodyTooLarge.into()),
                Err(_) => Err(ErrorKind::BodyUnreadable.into()),
            }
        }
    };
    let (claims, read) = verifier
        .check(token, &options.rules, target, read_body)
        .await?;
    tracing::debug!(
        iss = claims.iss(),
        sub = claims.sub(),
        bound = claims.is_bound(),
        "token accepted"
    );
    let body = match (read, body) {
        (Some(bytes), _) => B::from_bytes(bytes),
        (None, Some(body)) => body,
        (None, None) => return Err(ErrorKind::BodyUnreadable.into()),
    };
    parts.extensions.insert(Authentication(Some(claims)));
    let txn = admit_txn(verifier, options, &mut parts).await?;
    Ok((Request::from_parts(parts, body), txn))
}

/// The request's Txn-Token under the route's rules, into its extensions.
async fn admit_txn(
    verifier: &Verifier,
    options: &RouteOptions,
    parts: &mut http::request::Parts,
) -> Result<Option<Transaction>, VerifyError> {
    let txn = verifier.admit_txn(&parts.headers, &options.rules).await;
    let txn = txn.inspect_err(|error| verifier.reject(error))?;
    if let Some(txn) = &txn {
        parts.extensions.insert(txn.clone());
    }
    Ok(txn)
}
