//! The gateway as its trust domain's Transaction Token Service
//! (`--txn-token-service`): a Txn-Token minted for every request let in and
//! forwarded in the `Txn-Token` header, the JWKS that verifies them, and
//! the RFC 8693 token endpoint for workloads.

use std::time::Duration;

use svcauth_core::Algorithm;
use svcauth_gateway::txn::TransactionTokenService;
use svcauth_jwks::{KeyRing, KeySource, SigningKey};
use svcauth_verify::Verifier;

/// Where the Txn-Token Service publishes its keys.
pub(crate) const JWKS_PATH: &str = "/txn-token-service/jwks.json";
/// Its token endpoint (RFC 8693, Txn-Token Requests).
pub(crate) const TOKEN_PATH: &str = "/txn-token-service/token";

/// Flags of the Transaction Token Service.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TxnArgs {
    /// Be the trust domain's Transaction Token Service: mint a Txn-Token
    /// (sub, scope, tctx from the user's token; rctx: client address,
    /// method, path) for every request let in and forward it in the
    /// Txn-Token header; publish the keys at GET /txn-token-service/jwks.json;
    /// answer Txn-Token Requests at POST /txn-token-service/token.
    #[arg(long, env = "GATEWAY_TXN_TOKEN_SERVICE", requires = "trust_domain")]
    pub(crate) txn_token_service: bool,
    /// The trust domain: every Txn-Token's `aud`.
    #[arg(long, env = "GATEWAY_TRUST_DOMAIN", value_name = "NAME")]
    pub(crate) trust_domain: Option<String>,
    /// The Txn-Tokens' `iss` (default: this gateway's URL, from --listen).
    #[arg(long, env = "GATEWAY_TXN_ISSUER", value_name = "URL")]
    pub(crate) txn_issuer: Option<String>,
    /// The key Txn-Tokens are signed with (PKCS#8 PEM). Default: a new
    /// EdDSA key at each start (verifiers fetch the new JWKS on its kid).
    #[arg(long, env = "GATEWAY_TXN_SIGNING_KEY", value_name = "PEM_FILE")]
    pub(crate) txn_signing_key: Option<String>,
    /// How long a Txn-Token lives, in seconds (at most 600).
    #[arg(long, env = "GATEWAY_TXN_LIFETIME_SECS", default_value_t = 120)]
    pub(crate) txn_lifetime_secs: u64,
    /// A claim of the user's token copied into `tctx` (repeatable; default
    /// tenant and roles).
    #[arg(
        long = "txn-tctx-claim",
        env = "GATEWAY_TXN_TCTX_CLAIM",
        value_delimiter = ',',
        value_name = "CLAIM"
    )]
    pub(crate) txn_tctx_claim: Vec<String>,
    /// The `req_wl` of Txn-Tokens minted here (default: the issuer).
    #[arg(long, env = "GATEWAY_TXN_WORKLOAD", value_name = "NAME")]
    pub(crate) txn_workload: Option<String>,
    /// A workload allowed to request Txn-Tokens at the token endpoint, as
    /// ISS=JWKS_URL: its svcauth service tokens (aud = the issuer) and
    /// private_key_jwt assertions are verified with those keys (repeatable).
    #[arg(
        long = "txn-requester",
        env = "GATEWAY_TXN_REQUESTER",
        value_delimiter = ',',
        value_name = "ISS=JWKS_URL"
    )]
    pub(crate) txn_requester: Vec<String>,
    /// A scope requesters may start a transaction with themselves (a
    /// self-signed or unsigned subject; repeatable). Replacements only ever
    /// narrow the scope they replace.
    #[arg(
        long = "txn-internal-scope",
        env = "GATEWAY_TXN_INTERNAL_SCOPE",
        value_delimiter = ',',
        value_name = "SCOPE"
    )]
    pub(crate) txn_internal_scope: Vec<String>,
}

impl TxnArgs {
    /// The service, when --txn-token-service is given. `listen_url` is the
    /// gateway's own URL (the default issuer).
    pub(crate) fn service(
        &self,
        listen_url: &str,
        keys_client: Option<reqwest::Client>,
    ) -> Result<Option<TransactionTokenService>, String> {
        if !self.txn_token_service {
            return Ok(None);
        }
        let domain = self
            .trust_domain
            .as_deref()
            .ok_or("--trust-domain is required")?;
        let issuer = self
            .txn_issuer
            .clone()
            .unwrap_or_else(|| listen_url.to_owned());
        let key = match &self.txn_signing_key {
            Some(pem) => SigningKey::from_pem_file(pem, None)
                .map_err(|e| format!("--txn-signing-key {pem}: {e}"))?,
            None => SigningKey::generate(Algorithm::EdDSA).map_err(|e| e.to_string())?,
        };
        let mut builder = TransactionTokenService::builder(domain, &issuer, KeyRing::new(key))
            .lifetime(Duration::from_secs(self.txn_lifetime_secs));
        if !self.txn_tctx_claim.is_empty() {
            builder = builder.tctx_claims(self.txn_tctx_claim.iter().map(String::as_str));
        }
        if let Some(workload) = &self.txn_workload {
            builder = builder.edge_workload(workload);
        }
        if !self.txn_requester.is_empty() {
            let mut verifier = Verifier::builder(&issuer);
            for pair in &self.txn_requester {
                let (iss, url) = pair.split_once('=').ok_or_else(|| {
                    format!("--txn-requester: expected ISS=JWKS_URL, got {pair:?}")
                })?;
                let mut source =
                    KeySource::remote(url).map_err(|e| format!("--txn-requester {pair}: {e}"))?;
                if let Some(client) = &keys_client {
                    source = source.http_client(client.clone());
                }
                let source = source
                    .build()
                    .map_err(|e| format!("--txn-requester {pair}: {e}"))?;
                verifier = verifier.trust(iss, source);
                let scopes = self.txn_internal_scope.iter().map(String::as_str);
                builder = builder.allow_requester(iss, scopes);
            }
            builder = builder.authenticate_workloads(verifier.build().map_err(|e| e.to_string())?);
        }
        builder.build().map(Some).map_err(|e| e.to_string())
    }
}
