//! [`Sign`]: the client service the [`crate::SignLayer`] wraps.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, header};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use crate::error::SignError;
use crate::future::{BoxError, ResponseFuture};
use crate::signer::{Destination, Plan, Signer};
use crate::source::OnBehalfOf;

/// The signing service. See [`crate::SignLayer`].
#[derive(Debug, Clone)]
pub struct Sign<S> {
    inner: S,
    signer: Signer,
}

impl<S> Sign<S> {
    pub(crate) fn new(inner: S, signer: Signer) -> Self {
        Sign { inner, signer }
    }
}

fn destination(uri: &http::Uri) -> Result<Destination<'_>, SignError> {
    let scheme = uri.scheme_str().ok_or(SignError::RelativeUrl)?;
    let authority = uri.authority().ok_or(SignError::RelativeUrl)?.as_str();
    // One pass over the authority (`Uri::host` and `Uri::port_u16` would
    // each parse it again): drop user info, then split host and port.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (
            host,
            Some(port.parse::<u16>().map_err(|_| SignError::RelativeUrl)?),
        ),
        _ => (host_port, None),
    };
    let port = port.unwrap_or(if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    });
    Ok(Destination {
        scheme,
        host: host.trim_start_matches('[').trim_end_matches(']'),
        port,
        path: uri.path(),
        query: uri.query(),
    })
}

/// For `http::Request<B>` clients: hyper-util's legacy client, tonic channels.
impl<S, B> Service<Request<B>> for Sign<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if request.headers().contains_key(header::AUTHORIZATION) {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let plan = self
            .signer
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
                Request::from_parts(parts, B::from(bytes))
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
    if request.headers().contains_key(header::AUTHORIZATION) {
        return Ok(());
    }
    let destination = reqwest_destination(request.url())?;
    let Plan::Token { audience, bind } = signer.plan(&destination, extensions)? else {
        return Ok(());
    };
    let on_behalf_of = extensions.and_then(|e| e.get::<OnBehalfOf>());
    let value = if bind {
        let body = match request.body() {
            None => &[][..],
            Some(body) => body.as_bytes().ok_or(SignError::UnhashableBody)?,
        };
        if body.len() > signer.max_body_bytes() {
            return Err(SignError::BodyTooLarge(signer.max_body_bytes()));
        }
        signer
            .authorization(
                &audience,
                Some((request.method(), &destination, body)),
                on_behalf_of,
            )
            .await?
    } else if let Some(value) = on_behalf_of
        .is_none()
        .then(|| signer.cached_authorization(&audience))
        .flatten()
    {
        value
    } else {
        signer.authorization(&audience, None, on_behalf_of).await?
    };
    request.headers_mut().insert(header::AUTHORIZATION, value);
    Ok(())
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
        // Fast path: an unbound request with a cached token.
        if !request.headers().contains_key(header::AUTHORIZATION) {
            let plan = reqwest_destination(request.url()).and_then(|d| self.signer.plan(&d, None));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_reads_host_and_port_in_every_form() {
        let d = |u: &str| {
            let uri: http::Uri = u.parse().unwrap();
            let d = destination(&uri).unwrap();
            (
                d.scheme.to_owned(),
                d.host.to_owned(),
                d.port,
                d.path.to_owned(),
            )
        };
        assert_eq!(
            d("https://b.internal/x"),
            ("https".into(), "b.internal".into(), 443, "/x".into())
        );
        assert_eq!(
            d("http://b.internal:8080/"),
            ("http".into(), "b.internal".into(), 8080, "/".into())
        );
        assert_eq!(
            d("http://[::1]:9/y"),
            ("http".into(), "::1".into(), 9, "/y".into())
        );
        assert_eq!(
            d("https://[::1]/y"),
            ("https".into(), "::1".into(), 443, "/y".into())
        );
        assert_eq!(
            d("http://u:p@h:81/"),
            ("http".into(), "h".into(), 81, "/".into())
        );
        assert!(destination(&"/relative".parse().unwrap()).is_err());
    }
}
