//! [`PhantomTokenLayer`]: applies the [`Gateway`] to a service.

use tower_layer::Layer;

use crate::gateway::Gateway;
use crate::service::PhantomToken;

/// Swaps the reference token of every request for what the [`Gateway`]
/// gets for it, before the inner service (a reverse proxy, or your routes
/// in validation-only mode) sees the request.
///
/// See the crate docs for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct PhantomTokenLayer {
    gateway: Gateway,
}

impl PhantomTokenLayer {
    /// A layer for `gateway`.
    pub fn new(gateway: Gateway) -> Self {
        PhantomTokenLayer { gateway }
    }
}

impl<S> Layer<S> for PhantomTokenLayer {
    type Service = PhantomToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PhantomToken::new(inner, self.gateway.clone())
    }
}
