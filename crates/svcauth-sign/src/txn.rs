//! Passing the Txn-Token on: a call made while a request is handled carries
//! that request's `Txn-Token`, byte for byte, to the origins of its trust
//! domain and to no other (draft-ietf-oauth-transaction-tokens, "Txn-Token
//! Validation": outbound calls MUST include the Txn-Token as received).
//!
//! The token comes from the request's extensions ([`TxnToken`], for a call
//! made on another task) or else from the one `svcauth-verify` makes current
//! while the handler runs ([`TxnToken::current`]). Where it may go is
//! configuration only ([`SignerBuilder::propagate_txn_tokens`](crate::SignerBuilder::propagate_txn_tokens)):
//! never the request's URL alone. A request that already carries a
//! `Txn-Token` to an origin outside the trust domain is refused, not sent.

use http::{Extensions, HeaderMap, HeaderValue};
use svcauth_core::txn::{self, TxnToken};

use crate::error::{ConfigError, SignError};
use crate::route::{Destination, parse_origin};

/// The trust domain whose Txn-Tokens a signer passes on, and its origins.
#[derive(Debug, Clone)]
pub(crate) struct TxnPropagation {
    trust_domain: String,
    /// `(scheme, lower-case host, port)` of every origin in the domain.
    origins: Vec<(String, String, u16)>,
}

impl TxnPropagation {
    pub(crate) fn new<'a>(
        trust_domain: &str,
        origins: impl IntoIterator<Item = &'a str>,
        allow_insecure_http: bool,
    ) -> Result<Self, ConfigError> {
        if trust_domain.is_empty() {
            return Err(ConfigError::Invalid("a trust domain is a non-empty name"));
        }
        let mut parsed = Vec::new();
        for origin in origins {
            let (scheme, host, port) = parse_origin(origin)?;
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if scheme != "https" && !(scheme == "http" && (loopback || allow_insecure_http)) {
                return Err(ConfigError::Origin(origin.to_owned()));
            }
            parsed.push((scheme, host, port));
        }
        if parsed.is_empty() {
            return Err(ConfigError::Invalid(
                "Txn-Tokens are passed on to listed origins only: list at least one",
            ));
        }
        Ok(TxnPropagation {
            trust_domain: trust_domain.to_owned(),
            origins: parsed,
        })
    }

    /// Whether `d` is an origin of the trust domain.
    pub(crate) fn covers(&self, d: &Destination<'_>) -> bool {
        self.origins.iter().any(|(scheme, host, port)| {
            *port == d.port
                && d.scheme.eq_ignore_ascii_case(scheme)
                && d.host.eq_ignore_ascii_case(host)
        })
    }

    /// The Txn-Token to pass on: the request's own ([`TxnToken`] in its
    /// extensions), else the current one; only one of this trust domain.
    fn token(&self, extensions: Option<&Extensions>) -> Option<HeaderValue> {
        let token = extensions
            .and_then(|e| e.get::<TxnToken>().cloned())
            .or_else(TxnToken::current)?;
        if token.trust_domain() != self.trust_domain {
            tracing::debug!(
                trust_domain = token.trust_domain(),
                "a Txn-Token of another trust domain is not passed on"
            );
            return None;
        }
        Some(token.header_value().clone())
    }

    /// Sets the request's `Txn-Token` for destination `d`, or refuses a
    /// request that carries one outside the trust domain.
    pub(crate) fn apply(
        &self,
        headers: &mut HeaderMap,
        extensions: Option<&Extensions>,
        d: &Destination<'_>,
    ) -> Result<(), SignError> {
        let present = headers.contains_key(&txn::HEADER_NAME);
        if !self.covers(d) {
            if present {
                return Err(SignError::TxnTokenOutsideTrustDomain(d.origin()));
            }
            return Ok(());
        }
        if !present && let Some(value) = self.token(extensions) {
            headers.insert(txn::HEADER_NAME, value);
        }
        Ok(())
    }

    /// Whether anything is to be done for a request: it carries a
    /// `Txn-Token` already, or one is at hand.
    pub(crate) fn applies(&self, headers: &HeaderMap, extensions: Option<&Extensions>) -> bool {
        headers.contains_key(&txn::HEADER_NAME)
            || TxnToken::is_current()
            || extensions.is_some_and(|e| e.get::<TxnToken>().is_some())
    }
}

impl crate::Signer {
    /// A reqwest redirect policy that follows at most 10 redirects, and
    /// only to origins of the trust domain
    /// ([`propagate_txn_tokens`](crate::SignerBuilder::propagate_txn_tokens)):
    /// reqwest's own policy keeps custom headers such as `Txn-Token` on a
    /// redirect to another host (it drops only `Authorization` and
    /// cookies), so a callee could bounce the token anywhere. A redirect
    /// elsewhere is not followed: the caller gets the 3xx response.
    /// Without propagation, redirects stay on the same origin.
    pub fn redirect_policy(&self) -> reqwest::redirect::Policy {
        let propagation = self.txn_propagation().cloned();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error("too many redirects");
            }
            let allowed = crate::reqwest::reqwest_destination(attempt.url()).is_ok_and(|next| {
                match &propagation {
                    Some(p) => p.covers(&next),
                    None => attempt.previous().last().is_some_and(|prev| {
                        prev.scheme() == next.scheme
                            && prev.host_str().map(|h| h.trim_matches(['[', ']']))
                                == Some(next.host)
                            && prev.port_or_known_default() == Some(next.port)
                    }),
                }
            });
            if allowed {
                attempt.follow()
            } else {
                attempt.stop()
            }
        })
    }
}
