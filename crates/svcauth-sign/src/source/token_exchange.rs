//! [`TokenExchange`]: tokens from an STS by OAuth 2.0 Token Exchange
//! (RFC 8693), on behalf of the subject of an inbound token.

use crate::error::SignError;
use crate::source::{OnBehalfOf, TokenFuture, TokenRequest, TokenSource};
use crate::sts::StsClient;

const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Tokens from RFC 8693 token exchange: the user's inbound token
/// ([`OnBehalfOf::SubjectToken`]) for a token addressed to the next audience.
#[derive(Debug, Clone)]
pub struct TokenExchange {
    sts: StsClient,
    subject_token_type: String,
}

impl TokenExchange {
    /// Exchanges subject tokens (access tokens) at `sts`.
    pub fn new(sts: StsClient) -> Self {
        TokenExchange {
            sts,
            subject_token_type: TOKEN_TYPE_ACCESS.to_owned(),
        }
    }

    /// The `subject_token_type` URN (default the access-token type).
    #[must_use]
    pub fn subject_token_type(mut self, urn: &str) -> Self {
        self.subject_token_type = urn.to_owned();
        self
    }
}

impl TokenSource for TokenExchange {
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> TokenFuture<'a> {
        Box::pin(async move {
            let Some(OnBehalfOf::SubjectToken(subject)) = request.on_behalf_of else {
                return Err(SignError::Unsupported(
                    "a call without a subject token (token exchange needs one)",
                ));
            };
            if request.binding.is_some() {
                return Err(SignError::Unsupported(
                    "request binding (an STS token cannot be bound)",
                ));
            }
            let form = vec![
                ("grant_type", GRANT_TOKEN_EXCHANGE.to_owned()),
                ("subject_token", subject.clone()),
                ("subject_token_type", self.subject_token_type.clone()),
                ("requested_token_type", TOKEN_TYPE_ACCESS.to_owned()),
                self.sts.audience_form(request.audience),
            ];
            let token = self.sts.request(form).await?;
            tracing::debug!(aud = request.audience, "token obtained by token exchange");
            Ok(token)
        })
    }

    fn name(&self) -> &'static str {
        "token_exchange"
    }
}
