//! The Txn-Token Request endpoint over HTTP (feature `axum`): the form, the
//! requesting workload's authentication (mutual with TLS, as the draft
//! wants: a svcauth service token in `Authorization`, or a
//! `private_key_jwt` assertion, RFC 7523, each checked by the service's
//! workload verifier and each assertion accepted once), then
//! [`TransactionTokenService::exchange`].

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use svcauth_verify::ReplayStore;

use super::exchange::Params;
use super::{ExchangeError, Requester, TransactionTokenService};

/// The largest request form: 64 KiB.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// RFC 7523 §2.2.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl TransactionTokenService {
    /// The token endpoint (`POST`, an `application/x-www-form-urlencoded`
    /// Txn-Token Request) as an axum router serving `path`. Needs
    /// [`authenticate_workloads`](super::TxnServiceBuilder::authenticate_workloads):
    /// without it every request is `invalid_client`.
    pub fn router(&self, path: &str) -> axum::Router {
        axum::Router::new()
            .route(path, axum::routing::post(token_endpoint))
            .with_state(self.clone())
    }

    /// Who is asking: the caller of a valid service token, or the client of
    /// a valid, first-used `private_key_jwt` assertion.
    async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        form: &[(String, String)],
    ) -> Result<Requester, ExchangeError> {
        let invalid_client = |why: &str| ExchangeError::new("invalid_client", why);
        let verifier = self
            .inner
            .policy
            .workloads
            .as_ref()
            .ok_or_else(|| invalid_client("no workload is trusted here"))?;
        let params = Params::parse(form)?;
        let param = |name: &str| params.get(name);
        let bearer = svcauth_core::bearer_token(headers)
            .map_err(|_| invalid_client("the Authorization header is malformed"))?;
        let (token, assertion) = match (bearer, param("client_assertion")) {
            (Some(token), None) => (token, false),
            (None, Some(token)) if param("client_assertion_type") == Some(JWT_BEARER) => {
                (token, true)
            }
            _ => {
                return Err(invalid_client(
                    "one service token or client assertion is required",
                ));
            }
        };
        let claims = verifier
            .verify(token)
            .await
            .map_err(|e| invalid_client(e.kind().description()))?;
        if !assertion {
            return Ok(Requester::authenticated(claims.caller()));
        }
        // RFC 7523 §3: the client is both issuer and subject; an assertion
        // is accepted once.
        let client = claims.iss();
        if claims.sub() != client || param("client_id").is_some_and(|id| id != client) {
            return Err(invalid_client(
                "the assertion's iss, sub and client_id differ",
            ));
        }
        let jti = claims
            .jti()
            .ok_or_else(|| invalid_client("the assertion has no jti"))?;
        let id = format!("txn-assertion\n{client}\n{jti}");
        match self
            .inner
            .assertions
            .first_use(&id, claims.expires_at())
            .await
        {
            Ok(true) => Ok(Requester::authenticated(client)),
            Ok(false) => Err(invalid_client("the assertion was already used")),
            Err(_) => Err(ExchangeError::new(
                "temporarily_unavailable",
                "assertion state unavailable",
            )),
        }
    }
}

async fn token_endpoint(State(tts): State<TransactionTokenService>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let form_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form_type {
        return answer(Err(ExchangeError::new(
            "invalid_request",
            "the request is an application/x-www-form-urlencoded form",
        )));
    }
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return answer(Err(ExchangeError::new(
            "invalid_request",
            "the form is too large",
        )));
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
    let result = match tts.authenticate(&parts.headers, &form).await {
        Ok(requester) => {
            let result = tts.exchange(&requester, &form).await;
            match &result {
                Ok(_) => tracing::info!(requester = requester.id(), "Txn-Token issued"),
                Err(e) => tracing::info!(
                    requester = requester.id(),
                    error = e.code,
                    "Txn-Token refused"
                ),
            }
            result.map(|r| r.to_json())
        }
        Err(e) => Err(e),
    };
    answer(result)
}

/// The JSON answer, never cached (RFC 6749 §5.1).
fn answer(result: Result<serde_json::Value, ExchangeError>) -> Response {
    let (status, body) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(error) => (error.status(), error.to_json()),
    };
    let mut response = (status, Body::from(body.to_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
