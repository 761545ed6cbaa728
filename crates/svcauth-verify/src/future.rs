//! The response future of [`crate::Verify`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// Response future of [`crate::Verify`]: the inner service's future on
    /// the fast path (with the request's Txn-Token current, if any), a
    /// ready rejection, or the slow path (key fetch, stores,
    /// body buffering) boxed.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Inner { #[pin] future: F },
        Scoped { #[pin] future: svcauth_core::txn::Scoped<F> },
        Ready { output: Option<F::Output> },
        Slow { future: BoxFuture<F::Output> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    /// The inner service's future, polled with the request's Txn-Token
    /// current (so that `svcauth-sign` passes it on).
    pub(crate) fn scoped(future: svcauth_core::txn::Scoped<F>) -> Self {
        ResponseFuture {
            kind: Kind::Scoped { future },
        }
    }

    pub(crate) fn ready(output: F::Output) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                output: Some(output),
            },
        }
    }

    pub(crate) fn slow(future: BoxFuture<F::Output>) -> Self {
        ResponseFuture {
            kind: Kind::Slow { future },
        }
    }
}

/// Out of line, so that the Txn-Token's scope adds nothing to the hot
/// poll of a request without one.
#[inline(never)]
fn poll_scoped<F: Future>(
    future: Pin<&mut svcauth_core::txn::Scoped<F>>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    future.poll(cx)
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Scoped { future } => poll_scoped(future, cx),
            KindProj::Ready { output } => {
                Poll::Ready(output.take().expect("polled after completion"))
            }
            KindProj::Slow { future } => future.as_mut().poll(cx),
        }
    }
}
