//! [`Sign`]: the client service the [`crate::SignLayer`] wraps, for
//! `http::Request` clients (hyper-util, tonic); its reqwest twin is in
//! `reqwest.rs`.

use std::task::{Context, Poll};

use http::{Request, header};
use http_body_util::BodyExt;
use svcauth_core::BodyFromBytes;
use tower_service::Service;

use crate::error::SignError;
use crate::future::{BoxError, ResponseFuture};
use crate::origin::PinnedOrigin;
use crate::route::{Plan, destination};
use crate::signer::Signer;
use crate::source::OnBehalfOf;

/// The signing service. See [`crate::SignLayer`].
#[derive(Debug, Clone)]
pub struct Sign<S> {
    pub(crate) inner: S,
    pub(crate) signer: Signer,
    /// The one origin this client reaches ([`crate::SignLayer::origin`]).
    pub(crate) origin: Option<PinnedOrigin>,
}

impl<S> Sign<S> {
    pub(crate) fn new(inner: S, signer: Signer, origin: Option<PinnedOrigin>) -> Self {
        Sign {
            inner,
            signer,
            origin,
        }
    }
}

/// For `http::Request<B>` clients: hyper-util's legacy client, tonic channels.
impl<S, B> Service<Request<B>> for Sign<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    B: BodyFromBytes + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(origin) = &self.origin
            && let Err(e) = origin.apply(request.uri_mut())
        {
            return ResponseFuture::failed(e.into());
        }
        if let Some(txn) = self.signer.txn_propagation()
            && txn.applies(request.headers(), Some(request.extensions()))
        {
            let (mut parts, body) = request.into_parts();
            let applied = destination(&parts.uri)
                .and_then(|d| txn.apply(&mut parts.headers, Some(&parts.extensions), &d));
            if let Err(e) = applied {
                return ResponseFuture::failed(e.into());
            }
            request = Request::from_parts(parts, body);
        }
        if request.headers().contains_key(header::AUTHORIZATION) {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let plan = self
            .signer
            .router()
            .plan_uri(request.uri(), request.extensions(), destination);
        let (audience, bind) = match plan {
            Err(e) => return ResponseFuture::failed(e.into()),
            Ok(Plan::Skip) => return ResponseFuture::inner(self.inner.call(request)),
            Ok(Plan::Token { audience, bind }) => (audience, bind),
        };
        let on_behalf_of = request.extensions().get::<OnBehalfOf>().cloned();
        if !bind
            && on_behalf_of.is_none()
            && let Some(value) = self.signer.cached_authorization(&audience)
        {
            request.headers_mut().insert(header::AUTHORIZATION, value);
            return ResponseFuture::inner(self.inner.call(request));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let signer = self.signer.clone();
        ResponseFuture::slow(Box::pin(async move {
            let request = if bind {
                let (mut parts, body) = request.into_parts();
                let limit = signer.max_body_bytes() as u64;
                match body.size_hint().exact() {
                    Some(n) if n > limit => {
                        return Err(SignError::BodyTooLarge(limit as usize).into());
                    }
                    Some(_) => {}
                    None => return Err(SignError::UnhashableBody.into()),
                }
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| SignError::Body(e.into().to_string()))?
                    .to_bytes();
                let d = destination(&parts.uri)?;
                let value = signer
                    .authorization(
                        &audience,
                        Some((&parts.method, &d, &bytes)),
                        on_behalf_of.as_ref(),
                    )
                    .await?;
                parts.headers.insert(header::AUTHORIZATION, value);
                Request::from_parts(parts, B::from_bytes(bytes))
            } else {
                let value = signer
                    .authorization(&audience, None, on_behalf_of.as_ref())
                    .await?;
                request.headers_mut().insert(header::AUTHORIZATION, value);
                request
            };
            inner.call(request).await.map_err(Into::into)
        }))
    }
}
