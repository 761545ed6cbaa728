//! tonic (feature `tonic`): a signing channel.

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
        let uri = endpoint.uri();
        let origin = match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => return Err(ConfigError::Origin(uri.to_string())),
        };
        Ok(SignLayer::new(self.clone())
            .origin(&origin)?
            .layer(endpoint.connect_lazy()))
    }
}
