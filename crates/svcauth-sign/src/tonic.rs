//! tonic (feature `tonic`): a signing channel, and a proving one.

use tonic::transport::{Channel, Endpoint};
use tower_layer::Layer;

use crate::error::ConfigError;
use crate::layer::SignLayer;
use crate::service::Sign;
use crate::signer::Signer;

impl Signer {
    /// A tonic channel to `endpoint` whose calls carry this signer's token
    /// for the endpoint's origin: the layer is pinned to the origin the
    /// channel connects to ([`SignLayer::origin`]), so the two cannot
    /// disagree. Connects lazily; call it inside a Tokio runtime.
    ///
    /// Give it to a generated client with `new` (`FooClient::new(channel)`).
    ///
    /// ```no_run
    /// # async fn run(signer: svcauth_sign::Signer) -> Result<(), Box<dyn std::error::Error>> {
    /// let endpoint = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051");
    /// let channel = signer.tonic_channel(&endpoint)?;
    /// // let mut client = DemoClient::new(channel);
    /// # Ok(()) }
    /// ```
    pub fn tonic_channel(&self, endpoint: &Endpoint) -> Result<Sign<Channel>, ConfigError> {
        let origin = endpoint_origin(endpoint)?;
        Ok(SignLayer::new(self.clone())
            .origin(&origin)?
            .layer(endpoint.connect_lazy()))
    }
}

impl crate::wimse::WorkloadIdentity {
    /// A tonic channel to `endpoint` whose calls carry this workload's WIT
    /// and a fresh proof for each call, pinned to the endpoint's origin
    /// ([`ProofLayer::pin_origin`](crate::wimse::ProofLayer::pin_origin)).
    /// For a bearer token as well, put a [`SignLayer`] pinned to the same
    /// origin outside it, so that the proof binds the token:
    ///
    /// ```no_run
    /// # async fn run(signer: svcauth_sign::Signer, identity: svcauth_sign::wimse::WorkloadIdentity) -> Result<(), Box<dyn std::error::Error>> {
    /// use svcauth_sign::SignLayer;
    /// use svcauth_sign::wimse::ProofLayer;
    ///
    /// let endpoint = tonic::transport::Endpoint::from_static("https://b.internal:50051");
    /// // The WIT and proof only:
    /// let channel = identity.tonic_channel(&endpoint)?;
    /// // With a bearer token that the proof binds (`ath`):
    /// let origin = "https://b.internal:50051";
    /// let channel = tower::ServiceBuilder::new()
    ///     .layer(SignLayer::new(signer).origin(origin)?)
    ///     .layer(ProofLayer::new(identity).pin_origin(origin)?)
    ///     .service(endpoint.connect_lazy());
    /// # Ok(()) }
    /// ```
    pub fn tonic_channel(
        &self,
        endpoint: &Endpoint,
    ) -> Result<crate::wimse::Proof<Channel>, ConfigError> {
        let origin = endpoint_origin(endpoint)?;
        Ok(crate::wimse::ProofLayer::new(self.clone())
            .pin_origin(&origin)?
            .layer(endpoint.connect_lazy()))
    }
}

/// `scheme://authority` of the endpoint a channel connects to.
fn endpoint_origin(endpoint: &Endpoint) -> Result<String, ConfigError> {
    let uri = endpoint.uri();
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok(format!("{scheme}://{authority}")),
        _ => Err(ConfigError::Origin(uri.to_string())),
    }
}
