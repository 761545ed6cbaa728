//! The response future of [`crate::PhantomToken`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// Response future of [`crate::PhantomToken`]: the inner service's
    /// future (a JWT passed through), a ready rejection, or the swap
    /// followed by the inner call, boxed.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Inner { #[pin] future: F },
        Ready { output: Option<F::Output> },
        Swap { future: BoxFuture<F::Output> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn ready(output: F::Output) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                output: Some(output),
            },
        }
    }

    pub(crate) fn swap(future: BoxFuture<F::Output>) -> Self {
        ResponseFuture {
            kind: Kind::Swap { future },
        }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Ready { output } => {
                Poll::Ready(output.take().expect("polled after completion"))
            }
            KindProj::Swap { future } => future.as_mut().poll(cx),
        }
    }
}
