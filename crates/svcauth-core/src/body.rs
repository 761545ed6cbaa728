//! [`BodyFromBytes`]: the body types svcauth's layers can make from bytes.

use bytes::Bytes;

/// An HTTP body type that can be made from bytes.
///
/// The signing and verifying layers make bodies in two places: a request
/// body they read in full to bind a token to it (and then hand on), and the
/// body of a rejection. `From<Bytes>` would do, but tonic's body type does
/// not implement it, so the layers ask for this trait instead.
///
/// Implemented for `http_body_util::Full<Bytes>` and its boxed
/// combinators, for axum's body (feature `axum`) and for tonic's (feature
/// `tonic`). Implement it for your own body type if you use another.
///
/// ```
/// use bytes::Bytes;
/// use http_body::Body as _;
/// use http_body_util::Full;
/// use svcauth_core::BodyFromBytes;
///
/// let body = Full::<Bytes>::from_bytes(Bytes::from_static(b"hello"));
/// assert_eq!(body.size_hint().exact(), Some(5));
/// ```
pub trait BodyFromBytes: http_body::Body<Data = Bytes> {
    /// A body that yields `bytes` and ends.
    fn from_bytes(bytes: Bytes) -> Self;
}

impl BodyFromBytes for http_body_util::Full<Bytes> {
    fn from_bytes(bytes: Bytes) -> Self {
        http_body_util::Full::new(bytes)
    }
}

impl<E: 'static> BodyFromBytes for http_body_util::combinators::BoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        use http_body_util::BodyExt;
        http_body_util::Full::new(bytes)
            .map_err(|never| match never {})
            .boxed()
    }
}

impl<E: 'static> BodyFromBytes for http_body_util::combinators::UnsyncBoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        use http_body_util::BodyExt;
        http_body_util::Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    }
}

#[cfg(feature = "axum")]
impl BodyFromBytes for axum_core::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        axum_core::body::Body::from(bytes)
    }
}

#[cfg(feature = "tonic")]
impl BodyFromBytes for tonic::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        tonic::body::Body::new(http_body_util::Full::new(bytes))
    }
}
