//! [`ProofLayer`]: a WIT and a fresh WPT on every request a client sends.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request};
use svcauth_core::wimse::{WORKLOAD_IDENTITY_TOKEN, WORKLOAD_PROOF_TOKEN};
use tower_layer::Layer;
use tower_service::Service;

use super::{WimseError, WorkloadIdentity};
use crate::error::ConfigError;
use crate::future::{BoxError, ResponseFuture};
use crate::origin::PinnedOrigin;
use crate::route::{destination, parse_origin};

#[derive(Debug, Clone)]
struct Options {
    /// `(scheme, lower-case host, port)` of every origin the WIT may reach.
    origins: Vec<(String, String, u16)>,
    other: Vec<HeaderName>,
    allow_insecure_http: bool,
    /// The one origin of a client that sends path-only URIs (tonic).
    pinned: Option<PinnedOrigin>,
}

/// Wraps an `http::Request` client (hyper-util, a tonic channel, any tower
/// HTTP service) so that every request carries `Workload-Identity-Token`
/// (the current WIT) and `Workload-Proof-Token` (a WPT made for that very
/// request: its target URI, the WIT, and the `Authorization`, `Txn-Token`
/// and [`bind_header`](Self::bind_header) headers it carries).
///
/// Requests go only to the origins listed with [`origin`](Self::origin);
/// a request elsewhere fails with [`WimseError::OriginNotAllowed`] and is
/// not sent. Put it *inside* a [`crate::SignLayer`] (listed after it in a
/// `ServiceBuilder`) so that the proof covers the bearer token the sign
/// layer adds.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use svcauth_core::Algorithm;
/// use svcauth_jwks::{KeyRing, SigningKey};
/// use svcauth_sign::wimse::{ProofLayer, WitIssuer, WorkloadIdentity};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let issuer = WitIssuer::new("example.org", KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap())).unwrap();
/// let key = SigningKey::generate(Algorithm::ES256).unwrap();
/// let wit = issuer.issue(&"spiffe://example.org/a".parse().unwrap(), &key.public_jwk()).await.unwrap();
/// let layer = ProofLayer::new(WorkloadIdentity::new(key, &wit).unwrap())
///     .origin("https://b.internal").unwrap();
/// let client = ServiceBuilder::new().layer(layer).service(service_fn(|req: Request<Full<Bytes>>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers().contains_key("workload-proof-token"))
/// }));
/// let to_b = Request::get("https://b.internal/orders?x=1").body(Full::default()).unwrap();
/// assert!(client.clone().oneshot(to_b).await.unwrap());
/// let elsewhere = Request::get("https://evil.example/").body(Full::default()).unwrap();
/// assert!(client.oneshot(elsewhere).await.is_err());
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ProofLayer {
    identity: WorkloadIdentity,
    options: Arc<Options>,
}

impl ProofLayer {
    /// A layer proving `identity` on every request. Add at least one
    /// [`origin`](Self::origin): with none, every request is refused.
    pub fn new(identity: WorkloadIdentity) -> Self {
        ProofLayer {
            identity,
            options: Arc::new(Options {
                origins: Vec::new(),
                other: Vec::new(),
                allow_insecure_http: false,
                pinned: None,
            }),
        }
    }

    fn options(&mut self) -> &mut Options {
        Arc::make_mut(&mut self.options)
    }

    /// Allows requests to `origin` (`scheme://host[:port]`): https, or http
    /// to a loopback host.
    pub fn origin(mut self, origin: &str) -> Result<Self, ConfigError> {
        let parsed = parse_origin(origin)?;
        let loopback = parsed.1 == "localhost"
            || parsed
                .1
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if parsed.0 != "https" && !loopback && !self.options.allow_insecure_http {
            return Err(ConfigError::Url(origin.to_owned()));
        }
        self.options().origins.push(parsed);
        Ok(self)
    }

    /// For a client that reaches exactly one origin and sends requests
    /// with a path only (a tonic `Channel`): allows `origin` as
    /// [`origin`](Self::origin) does, gives relative request URIs this
    /// origin (the proof's `aud` names it), and refuses absolute ones that
    /// name another. [`WorkloadIdentity::tonic_channel`] sets it from the
    /// channel's endpoint, so that the two cannot disagree.
    pub fn pin_origin(self, origin: &str) -> Result<Self, ConfigError> {
        let pinned = PinnedOrigin::parse(origin)?;
        let mut layer = self.origin(origin)?;
        layer.options().pinned = Some(pinned);
        Ok(layer)
    }

    /// Allows plain-http origins that are not loopback. Whoever can read
    /// the traffic can then replay the WIT with a proof until it expires.
    pub fn danger_allow_insecure_http(mut self) -> Self {
        self.options().allow_insecure_http = true;
        self
    }

    /// Binds this header too, when present, through the proof's `oth`
    /// claim (the verifier must know it, or it refuses the proof).
    pub fn bind_header(mut self, name: HeaderName) -> Self {
        self.options().other.push(name);
        self
    }
}

impl ProofLayer {
    /// Adds the WIT and a new WPT to a reqwest request (the same checks as
    /// the layer: an allowed origin, single token headers). Run it after
    /// the request has its `Authorization` header, so `ath` covers it.
    pub fn prove_reqwest(&self, request: &mut reqwest::Request) -> Result<(), WimseError> {
        let uri: http::Uri = request
            .url()
            .as_str()
            .parse()
            .map_err(|_| WimseError::Request("the URL is not a valid URI".into()))?;
        prove(&self.identity, &self.options, &uri, request.headers_mut())
    }
}

/// Checks the origin of `uri`, then sets the WIT and a WPT for it in
/// `headers`.
fn prove(
    identity: &WorkloadIdentity,
    options: &Options,
    uri: &http::Uri,
    headers: &mut http::HeaderMap,
) -> Result<(), WimseError> {
    let d = destination(uri).map_err(|e| WimseError::Request(e.to_string()))?;
    let allowed = options.origins.iter().any(|(scheme, host, port)| {
        d.port == *port
            && d.scheme.eq_ignore_ascii_case(scheme)
            && d.host.eq_ignore_ascii_case(host)
    });
    if !allowed {
        return Err(WimseError::OriginNotAllowed(d.origin()));
    }
    let (wit, proof) = identity.proof(uri, headers, &options.other)?;
    let value = |value: &str| {
        HeaderValue::from_str(value).map_err(|_| WimseError::Wit("not a header value".into()))
    };
    let (wit, proof) = (value(wit.token())?, value(&proof)?);
    headers.insert(HeaderName::from_static(WORKLOAD_IDENTITY_TOKEN), wit);
    headers.insert(HeaderName::from_static(WORKLOAD_PROOF_TOKEN), proof);
    Ok(())
}

impl<S> Layer<S> for ProofLayer {
    type Service = Proof<S>;

    fn layer(&self, inner: S) -> Proof<S> {
        Proof {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`ProofLayer`].
#[derive(Debug, Clone)]
pub struct Proof<S> {
    inner: S,
    layer: ProofLayer,
}

/// For `reqwest::Client` (and any service of `reqwest::Request`).
impl<S> Service<reqwest::Request> for Proof<S>
where
    S: Service<reqwest::Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: reqwest::Request) -> Self::Future {
        match self.layer.prove_reqwest(&mut request) {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(e) => ResponseFuture::failed(e.into()),
        }
    }
}

/// For `http::Request` clients: hyper-util, tonic channels.
impl<S, B> Service<Request<B>> for Proof<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let options = &*self.layer.options;
        if let Some(pinned) = &options.pinned
            && let Err(e) = pinned.apply(request.uri_mut())
        {
            let e = WimseError::OriginNotAllowed(e.to_string());
            return ResponseFuture::failed(e.into());
        }
        // A Uri clone shares its bytes: no copy of the URL.
        let uri = request.uri().clone();
        match prove(&self.layer.identity, options, &uri, request.headers_mut()) {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(e) => ResponseFuture::failed(e.into()),
        }
    }
}

/// As a `reqwest_middleware` middleware: add it after the signer's
/// (`.with(signer.middleware()).with(proof_layer)`), so that the proof
/// binds the bearer token.
#[cfg(feature = "reqwest-middleware")]
#[async_trait::async_trait]
impl reqwest_middleware::Middleware for ProofLayer {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.prove_reqwest(&mut request)
            .map_err(reqwest_middleware::Error::middleware)?;
        next.run(request, extensions).await
    }
}
