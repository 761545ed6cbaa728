//! [`ClientCredentials`]: tokens from an STS by the client credentials
//! grant (RFC 6749 §4.4), one per audience.

use crate::error::SignError;
use crate::source::{TokenFuture, TokenRequest, TokenSource};
use crate::sts::StsClient;

const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// Tokens from the client credentials grant, one per audience.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    sts: StsClient,
}

impl ClientCredentials {
    /// Asks `sts` for tokens as the client itself.
    pub fn new(sts: StsClient) -> Self {
        ClientCredentials { sts }
    }
}

impl TokenSource for ClientCredentials {
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> TokenFuture<'a> {
        Box::pin(async move {
            if request.binding.is_some() {
                return Err(SignError::Unsupported(
                    "request binding (an STS token cannot be bound)",
                ));
            }
            if request.on_behalf_of.is_some() {
                return Err(SignError::Unsupported("delegation (use TokenExchange)"));
            }
            let form = vec![
                ("grant_type", GRANT_CLIENT_CREDENTIALS.to_owned()),
                self.sts.audience_form(request.audience),
            ];
            let token = self.sts.request(form).await?;
            tracing::debug!(
                aud = request.audience,
                "token obtained by client credentials"
            );
            Ok(token)
        })
    }

    fn name(&self) -> &'static str {
        "client_credentials"
    }
}
