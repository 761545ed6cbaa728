//! Everything reqwest: [`Signer::sign`] on a `RequestBuilder`, the
//! [`crate::SignLayer`] service around a `reqwest::Client`, and (feature
//! `reqwest-middleware`) a middleware for `reqwest_middleware::ClientBuilder`.

use std::task::{Context, Poll};

use http::header;
use tower_service::Service;

use crate::error::SignError;
use crate::future::{BoxError, ResponseFuture};
use crate::route::{Destination, Plan};
use crate::service::Sign;
use crate::signer::Signer;
use crate::source::OnBehalfOf;

impl Signer {
    /// Adds the token for the request's destination to a reqwest request.
    ///
    /// ```no_run
    /// # async fn run(signer: svcauth_sign::Signer) -> Result<(), Box<dyn std::error::Error>> {
    /// let client = reqwest::Client::new();
    /// let response = signer.sign(client.get("https://b.internal/orders")).await?.send().await?;
    /// # Ok(()) }
    /// ```
    pub async fn sign(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, SignError> {
        self.sign_with(builder, &http::Extensions::new()).await
    }

    /// [`sign`](Signer::sign) with per-request options in `extensions`:
    /// [`crate::TargetAudience`], [`crate::BindRequest`], [`crate::OnBehalfOf`].
    pub async fn sign_with(
        &self,
        builder: reqwest::RequestBuilder,
        extensions: &http::Extensions,
    ) -> Result<reqwest::RequestBuilder, SignError> {
        let (client, request) = builder.build_split();
        let mut request = request.map_err(|e| SignError::Body(e.to_string()))?;
        sign_reqwest(self, &mut request, Some(extensions)).await?;
        Ok(reqwest::RequestBuilder::from_parts(client, request))
    }

    /// This signer as a `reqwest_middleware` middleware. Per-request options
    /// ([`crate::TargetAudience`], [`crate::BindRequest`],
    /// [`crate::OnBehalfOf`]) go in with `RequestBuilder::with_extension`.
    #[cfg(feature = "reqwest-middleware")]
    pub fn middleware(&self) -> SignMiddleware {
        SignMiddleware {
            signer: self.clone(),
        }
    }
}

/// A `reqwest_middleware::Middleware` attaching the signer's tokens.
#[cfg(feature = "reqwest-middleware")]
#[derive(Debug, Clone)]
pub struct SignMiddleware {
    signer: Signer,
}

#[cfg(feature = "reqwest-middleware")]
#[async_trait::async_trait]
impl reqwest_middleware::Middleware for SignMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        sign_reqwest(&self.signer, &mut request, Some(extensions))
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        next.run(request, extensions).await
    }
}

pub(crate) fn reqwest_destination(url: &url::Url) -> Result<Destination<'_>, SignError> {
    let host = url.host_str().ok_or(SignError::RelativeUrl)?;
    Ok(Destination {
        scheme: url.scheme(),
        host: host.trim_start_matches('[').trim_end_matches(']'),
        port: url.port_or_known_default().ok_or(SignError::RelativeUrl)?,
        path: url.path(),
        query: url.query(),
    })
}

/// Signs one reqwest request in place, with `extensions` for per-request
/// options (reqwest-middleware passes them; plain reqwest has none).
pub(crate) async fn sign_reqwest(
    signer: &Signer,
    request: &mut reqwest::Request,
    extensions: Option<&http::Extensions>,
) -> Result<(), SignError> {
    propagate_txn(signer, request, extensions)?;
    if request.headers().contains_key(header::AUTHORIZATION) {
        return Ok(());
    }
    let destination = reqwest_destination(request.url())?;
    let Plan::Token { audience, bind } = signer.router().plan(&destination, extensions)? else {
        return Ok(());
    };
    let on_behalf_of = extensions.and_then(|e| e.get::<OnBehalfOf>());
    let body = match (bind, request.body()) {
        (false, _) => None,
        (true, None) => Some(&[][..]),
        (true, Some(body)) => Some(body.as_bytes().ok_or(SignError::UnhashableBody)?),
    };
    if body.is_some_and(|b| b.len() > signer.max_body_bytes()) {
        return Err(SignError::BodyTooLarge(signer.max_body_bytes()));
    }
    let bind = body.map(|body| (request.method(), &destination, body));
    let value = signer.authorization(&audience, bind, on_behalf_of).await?;
    request.headers_mut().insert(header::AUTHORIZATION, value);
    Ok(())
}

/// Sets (or checks) the request's `Txn-Token` for its destination.
fn propagate_txn(
    signer: &Signer,
    request: &mut reqwest::Request,
    extensions: Option<&http::Extensions>,
) -> Result<(), SignError> {
    let Some(txn) = signer.txn_propagation() else {
        return Ok(());
    };
    if !txn.applies(request.headers(), extensions) {
        return Ok(());
    }
    let url = request.url().clone();
    txn.apply(
        request.headers_mut(),
        extensions,
        &reqwest_destination(&url)?,
    )
}

/// For `reqwest::Client`, which is a tower service of `reqwest::Request`.
impl<S> Service<reqwest::Request> for Sign<S>
where
    S: Service<reqwest::Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: reqwest::Request) -> Self::Future {
        if let Some(origin) = &self.origin
            && let Err(e) = reqwest_destination(request.url()).and_then(|d| origin.check(&d))
        {
            return ResponseFuture::failed(e.into());
        }
        if let Err(e) = propagate_txn(&self.signer, &mut request, None) {
            return ResponseFuture::failed(e.into());
        }
        // Fast path: an unbound request with a cached token.
        if !request.headers().contains_key(header::AUTHORIZATION) {
            let plan = reqwest_destination(request.url())
                .and_then(|d| self.signer.router().plan(&d, None));
            match plan {
                Err(e) => return ResponseFuture::failed(e.into()),
                Ok(Plan::Skip) => return ResponseFuture::inner(self.inner.call(request)),
                Ok(Plan::Token {
                    audience,
                    bind: false,
                }) => {
                    if let Some(value) = self.signer.cached_authorization(&audience) {
                        request.headers_mut().insert(header::AUTHORIZATION, value);
                        return ResponseFuture::inner(self.inner.call(request));
                    }
                }
                Ok(Plan::Token { .. }) => {}
            }
        } else {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let signer = self.signer.clone();
        ResponseFuture::slow(Box::pin(async move {
            sign_reqwest(&signer, &mut request, None).await?;
            inner.call(request).await.map_err(Into::into)
        }))
    }
}
