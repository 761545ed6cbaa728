//! reqwest in one line: [`Signer::sign`] on a `RequestBuilder`, and (feature
//! `reqwest-middleware`) a middleware for `reqwest_middleware::ClientBuilder`.

use crate::error::SignError;
use crate::service::sign_reqwest;
use crate::signer::Signer;

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
