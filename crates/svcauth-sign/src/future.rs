//! The response future of [`crate::Sign`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// Errors of the signing layer: the inner client's, or a
/// [`crate::SignError`] (downcast to match). The same type as
/// `tower::BoxError`, which is what callers name.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) type SlowFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// Response future of [`crate::Sign`].
    pub struct ResponseFuture<F, T> {
        #[pin]
        kind: Kind<F, T>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, T> {
        Inner { #[pin] future: F },
        Failed { error: Option<BoxError> },
        Slow { future: SlowFuture<Result<T, BoxError>> },
    }
}

impl<F, T> ResponseFuture<F, T> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        ResponseFuture {
            kind: Kind::Failed { error: Some(error) },
        }
    }

    pub(crate) fn slow(future: SlowFuture<Result<T, BoxError>>) -> Self {
        ResponseFuture {
            kind: Kind::Slow { future },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_err(Into::into),
            KindProj::Failed { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
            KindProj::Slow { future } => future.as_mut().poll(cx),
        }
    }
}
