//! The Txn-Token Request (RFC 8693 token exchange, profiled by the draft):
//! parameters, subject tokens, the issuance policy, and the response.
//!
//! Subject tokens accepted: a Txn-Token of this service (a replacement:
//! `txn`, `sub`, `aud`, `tctx` and `rctx` kept, `scope` only narrowed,
//! `tctx` only added to, never past the old `exp`, `req_wl` extended with
//! the requester); a self-signed JWT of the requesting workload; an
//! unsigned JSON object; an OAuth access token when the service swaps them
//! ([`TxnServiceBuilder::access_tokens`](super::TxnServiceBuilder::access_tokens)).
//! Refresh tokens never.

use std::collections::HashMap;

use http::StatusCode;
use serde_json::{Map, Value};
use svcauth_core::txn;

use super::{TransactionTokenService, TxnError, TxnGrant};
use crate::Swapped;

/// The RFC 8693 grant type.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `subject_token_type` of a JWT (RFC 8693 §3).
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The largest `request_context` or `request_details`, in bytes.
const MAX_CONTEXT_BYTES: usize = 8 * 1024;

/// Who may ask for what.
#[derive(Default)]
pub(super) struct Policy {
    /// Workloads allowed to request -> the scopes they may start with.
    pub(super) requesters: HashMap<String, Vec<String>>,
    /// Swaps OAuth access tokens given as subject tokens.
    pub(super) gateway: Option<crate::Gateway>,
    /// Verifies the workloads' credentials and self-signed subject tokens
    /// (its audience: this service).
    pub(super) workloads: Option<svcauth_verify::Verifier>,
}

/// The workload asking for a Txn-Token, already authenticated (by its
/// service token or `private_key_jwt`; the HTTP endpoint does this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester(String);

impl Requester {
    /// A workload whose identity the caller has authenticated.
    pub fn authenticated(id: &str) -> Self {
        Requester(id.to_owned())
    }

    /// Its identifier.
    pub fn id(&self) -> &str {
        &self.0
    }
}

/// A successful Txn-Token Response.
#[derive(Debug, Clone)]
pub struct TxnTokenResponse {
    /// The Txn-Token.
    pub access_token: String,
    /// Seconds it lives.
    pub expires_in: u64,
}

impl TxnTokenResponse {
    /// The JSON body: `token_type` `N_A`, `issued_token_type` the Txn-Token
    /// URN, and never a `refresh_token`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "access_token": self.access_token,
            "issued_token_type": txn::TOKEN_TYPE,
            "token_type": "N_A",
            "expires_in": self.expires_in,
        })
    }
}

/// A refused Txn-Token Request: an RFC 6749 §5.2 error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct ExchangeError {
    /// The OAuth error code (`invalid_request`, `invalid_scope`, ...).
    pub code: &'static str,
    /// A description for the requester (never token contents).
    pub description: String,
}

impl ExchangeError {
    pub(super) fn new(code: &'static str, description: impl Into<String>) -> Self {
        ExchangeError {
            code,
            description: description.into(),
        }
    }

    /// The HTTP status: 401 for `invalid_client`, 503 when a server the
    /// service depends on is unavailable, 500 for `server_error`, else 400.
    pub fn status(&self) -> StatusCode {
        match self.code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "error": self.code, "error_description": self.description })
    }
}

fn invalid_request(description: &str) -> ExchangeError {
    ExchangeError::new("invalid_request", description)
}

/// The form's parameters, each at most once (RFC 6749 §3.2).
pub(super) struct Params<'a>(HashMap<&'a str, &'a str>);

impl<'a> Params<'a> {
    pub(super) fn parse(form: &'a [(String, String)]) -> Result<Self, ExchangeError> {
        let mut map = HashMap::new();
        for (name, value) in form {
            if map.insert(name.as_str(), value.as_str()).is_some() {
                return Err(invalid_request("a parameter is repeated"));
            }
        }
        Ok(Params(map))
    }

    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.0.get(name).copied().filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<&'a str, ExchangeError> {
        self.get(name)
            .ok_or_else(|| invalid_request(&format!("{name} is required")))
    }

    /// A JSON object parameter (`request_context`, `request_details`).
    fn object(&self, name: &str) -> Result<Map<String, Value>, ExchangeError> {
        let Some(text) = self.get(name) else {
            return Ok(Map::new());
        };
        if text.len() > MAX_CONTEXT_BYTES {
            return Err(invalid_request(&format!("{name} is too large")));
        }
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(invalid_request(&format!("{name} is not a JSON object"))),
        }
    }
}

/// The subject of a request, as its subject token says.
struct Subject {
    sub: String,
    /// The scopes the transaction may have at most.
    allowed: Vec<String>,
    /// What the token says for `tctx`.
    tctx: Map<String, Value>,
    /// A replacement: the token replaced.
    replaced: Option<std::sync::Arc<svcauth_verify::TxnTokenClaims>>,
}

impl TransactionTokenService {
    /// Processes a Txn-Token Request from `requester` (already
    /// authenticated) with the form's parameters: the checks of the
    /// draft's "Txn-Token Request Processing", then a signed Txn-Token.
    pub async fn exchange(
        &self,
        requester: &Requester,
        form: &[(String, String)],
    ) -> Result<TxnTokenResponse, ExchangeError> {
        let params = Params::parse(form)?;
        if params.required("grant_type")? != TOKEN_EXCHANGE {
            return Err(ExchangeError::new(
                "unsupported_grant_type",
                "only token exchange issues Txn-Tokens",
            ));
        }
        if params.required("requested_token_type")? != txn::TOKEN_TYPE {
            return Err(invalid_request(
                "requested_token_type must be the Txn-Token type",
            ));
        }
        if params.required("audience")? != self.trust_domain() {
            return Err(ExchangeError::new(
                "invalid_target",
                "audience must be this trust domain",
            ));
        }
        let scope = params.required("scope")?;
        let policy = &self.inner.policy;
        let Some(requester_scopes) = policy.requesters.get(requester.id()) else {
            return Err(ExchangeError::new(
                "unauthorized_client",
                "this workload may not request Txn-Tokens",
            ));
        };
        let subject = self.subject(requester, requester_scopes, &params).await?;
        let wanted: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        if wanted.is_empty()
            || !wanted
                .iter()
                .all(|s| subject.allowed.iter().any(|a| a == s))
        {
            return Err(ExchangeError::new(
                "invalid_scope",
                "the scope exceeds what the subject token allows",
            ));
        }
        let details = params.object("request_details")?;
        let request_context = params.object("request_context")?;
        let grant = match &subject.replaced {
            Some(old) => replacement(old, requester, wanted.join(" "), details)?,
            None => {
                let mut grant = TxnGrant::new(&subject.sub, &wanted.join(" "), requester.id());
                grant.tctx = subject.tctx;
                // The subject's claims win over what the requester asks.
                for (name, value) in details {
                    grant.tctx.entry(name).or_insert(value);
                }
                grant.rctx = request_context;
                grant
            }
        };
        let (token, expires_in) = self.mint_for(grant).await.map_err(|e| match e {
            TxnError::Subject(why) => ExchangeError::new("invalid_grant", why),
            TxnError::Key(_) => ExchangeError::new("server_error", "signing failed"),
        })?;
        Ok(TxnTokenResponse {
            access_token: token,
            expires_in,
        })
    }

    /// The subject token, validated, as a [`Subject`].
    async fn subject(
        &self,
        requester: &Requester,
        requester_scopes: &[String],
        params: &Params<'_>,
    ) -> Result<Subject, ExchangeError> {
        let token = params.required("subject_token")?;
        let invalid_grant = |why: &str| ExchangeError::new("invalid_grant", why);
        match params.required("subject_token_type")? {
            txn::TOKEN_TYPE => {
                let verifier = self
                    .own_verifier()
                    .map_err(|_| ExchangeError::new("server_error", "own keys unusable"))?;
                let value = http::HeaderValue::from_str(token)
                    .map_err(|_| invalid_grant("the Txn-Token is malformed"))?;
                let old = verifier
                    .verify_txn_token(&value)
                    .await
                    .map_err(|e| invalid_grant(e.kind().description()))?;
                Ok(Subject {
                    sub: old.sub().to_owned(),
                    allowed: old.scopes().map(str::to_owned).collect(),
                    tctx: Map::new(),
                    replaced: Some(old),
                })
            }
            txn::SELF_SIGNED_TOKEN_TYPE => {
                let claims = self.self_signed(requester, token).await?;
                let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
                // A scope the token names narrows the requester's own.
                let named = claims.get("scope").and_then(Value::as_str);
                let allowed = requester_scopes
                    .iter()
                    .filter(|s| named.is_none_or(|n| n.split(' ').any(|t| t == *s)))
                    .cloned()
                    .collect();
                Ok(Subject {
                    sub: sub.to_owned(),
                    allowed,
                    tctx: self.context_of(&claims),
                    replaced: None,
                })
            }
            txn::UNSIGNED_JSON_TOKEN_TYPE => {
                let object: Map<String, Value> = match serde_json::from_str(token) {
                    Ok(Value::Object(map)) if token.len() <= MAX_CONTEXT_BYTES => map,
                    _ => return Err(invalid_grant("the subject is not a JSON object")),
                };
                let sub = object.get("sub").and_then(Value::as_str).unwrap_or("");
                Ok(Subject {
                    sub: sub.to_owned(),
                    allowed: requester_scopes.to_vec(),
                    tctx: Map::new(),
                    replaced: None,
                })
            }
            txn::ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE if self.inner.policy.gateway.is_some() => {
                let gateway = self.inner.policy.gateway.as_ref().expect("checked above");
                let claims = match gateway.swap(token).await {
                    Ok(swapped) => subject_claims(&swapped),
                    Err(crate::SwapError::Inactive | crate::SwapError::Malformed) => {
                        return Err(invalid_grant("the access token is not active"));
                    }
                    Err(_) => {
                        return Err(ExchangeError::new(
                            "temporarily_unavailable",
                            "the authorization server is unavailable",
                        ));
                    }
                };
                let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
                Ok(Subject {
                    sub: text("sub").to_owned(),
                    allowed: text("scope").split(' ').map(str::to_owned).collect(),
                    tctx: self.context_of(&claims),
                    replaced: None,
                })
            }
            txn::REFRESH_TOKEN_TYPE => {
                Err(invalid_request("a refresh token never gets a Txn-Token"))
            }
            _ => Err(invalid_request("this subject_token_type is not accepted")),
        }
    }

    /// A self-signed JWT of the requester: `iss` the requester, `aud` this
    /// service, `iat` and `exp`, signed with the requester's key (checked
    /// by the endpoint's verifier, which trusts the workloads).
    async fn self_signed(
        &self,
        requester: &Requester,
        token: &str,
    ) -> Result<Map<String, Value>, ExchangeError> {
        let invalid = |why: &str| ExchangeError::new("invalid_grant", why);
        let verifier = self
            .inner
            .policy
            .workloads
            .as_ref()
            .ok_or_else(|| invalid("self-signed subject tokens are not accepted here"))?;
        let verified = verifier
            .verify(token)
            .await
            .map_err(|e| invalid(e.kind().description()))?;
        if verified.iss() != requester.id() {
            return Err(invalid(
                "a self-signed subject token is the requester's own",
            ));
        }
        serde_json::from_slice(verified.raw_json()).map_err(|_| invalid("unreadable claims"))
    }
}

/// The claims of what a swap produced: the internal JWT's payload (it
/// came from the authorization server itself), or the introspection answer.
pub(crate) fn subject_claims(swapped: &Swapped) -> Map<String, Value> {
    match swapped {
        Swapped::Jwt(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(svcauth_core::jws::peek)
            .and_then(|(_, payload)| serde_json::from_slice(&payload).ok())
            .unwrap_or_default(),
        Swapped::Introspected(claims) => claims.claims().clone(),
    }
}

/// The grant replacing `old` for `requester`: `txn`, `sub`, `aud`, `rctx`
/// and `tctx` kept (new `tctx` members may be added, none changed), the
/// narrowed `scope`, `req_wl` extended, no later expiry.
fn replacement(
    old: &svcauth_verify::TxnTokenClaims,
    requester: &Requester,
    scope: String,
    details: Map<String, Value>,
) -> Result<TxnGrant, ExchangeError> {
    let mut tctx = old.tctx().cloned().unwrap_or_default();
    for (name, value) in details {
        match tctx.get(&name) {
            Some(kept) if *kept != value => {
                return Err(invalid_request(
                    "tctx is immutable: members may be added, not changed",
                ));
            }
            _ => {
                tctx.insert(name, value);
            }
        }
    }
    let claims = old.claims();
    Ok(TxnGrant {
        sub: claims.sub.clone(),
        scope,
        req_wl: format!("{},{}", claims.req_wl, requester.id()),
        tctx,
        rctx: claims.rctx.clone().unwrap_or_default(),
        txn: Some(claims.txn.clone()),
        not_after: Some(claims.exp),
    })
}
