//! Reading an introspection answer (RFC 7662), and checking it when it
//! comes as a signed JWT (RFC 9701).

use std::sync::Arc;

use serde_json::{Map, Value};
use svcauth_core::{Algorithm, jws};
use svcauth_jwks::{KeyLookup, KeySource};
use svcauth_sign::{MAX_RESPONSE_BYTES, SignError, StsClient};

use crate::error::SwapError;

/// How far an RFC 9701 answer's `iat` may be from now: 5 minutes.
const MAX_RESPONSE_AGE_SECS: u64 = 300;

/// What the authorization server said of an active reference token, put in
/// the request's extensions in validation-only mode.
#[derive(Clone, Debug)]
pub struct Introspected(Arc<Map<String, Value>>);

impl Introspected {
    #[cfg(test)]
    pub(crate) fn from_answer(answer: Map<String, Value>) -> Self {
        Introspected(Arc::new(answer))
    }

    /// The answer's members (`active`, `sub`, `client_id`, `scope`, ...).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0
    }

    /// One member as a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// `sub`: the resource owner, when the token has one.
    pub fn sub(&self) -> Option<&str> {
        self.get_str("sub")
    }

    /// `client_id`: the client the token was issued to.
    pub fn client_id(&self) -> Option<&str> {
        self.get_str("client_id")
    }

    /// Who the token speaks for: `sub`, else (a client-credentials token,
    /// which has no user) the `client_id`.
    pub fn subject(&self) -> Option<&str> {
        self.sub().or_else(|| self.client_id())
    }

    /// The space-separated `scope`, split.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.get_str("scope")
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// `exp`, seconds since the epoch.
    pub fn expires_at(&self) -> Option<u64> {
        self.0.get("exp").and_then(Value::as_u64)
    }
}

/// What an introspection endpoint answered (RFC 7662 / RFC 9701).
pub(crate) enum IntrospectionResponse {
    /// A plain JSON answer (`active`, `sub`, `scope`, ...).
    Json(Map<String, Value>),
    /// An RFC 9701 signed answer, not yet verified.
    Jwt(String),
}

/// Asks the introspection endpoint about `token`, authenticated as the
/// gateway's client at the authorization server; with `jwt_response`, for
/// a signed RFC 9701 answer, which [`read`] verifies.
pub(crate) async fn ask(
    sts: &StsClient,
    endpoint: &str,
    token: &str,
    jwt_response: bool,
) -> Result<IntrospectionResponse, SignError> {
    let form = [
        ("token", token.to_owned()),
        ("token_type_hint", "access_token".to_owned()),
    ];
    let accept = if jwt_response {
        "application/token-introspection+jwt"
    } else {
        "application/json"
    };
    let answer = sts.post(endpoint, &form, accept).await?;
    classify(&answer.content_type, &answer.body)
}

/// An introspection answer's body, by its content type: a signed RFC 9701
/// answer, or plain JSON.
pub(crate) fn classify(
    content_type: &str,
    body: &[u8],
) -> Result<IntrospectionResponse, SignError> {
    if content_type.starts_with("application/token-introspection+jwt") {
        String::from_utf8(body.to_vec())
            .map(|jwt| IntrospectionResponse::Jwt(jwt.trim().to_owned()))
            .map_err(|_| SignError::TokenResponse("not UTF-8".into()))
    } else {
        serde_json::from_slice(body)
            .map(IntrospectionResponse::Json)
            .map_err(|e| SignError::TokenResponse(format!("not an introspection response: {e}")))
    }
}

/// The claims of an active token, `Inactive`, or why the answer is unusable.
pub(crate) async fn read(
    response: IntrospectionResponse,
    jwt: Option<&(String, KeySource)>,
    client_id: &str,
    audience: Option<&str>,
    now: u64,
) -> Result<Introspected, SwapError> {
    let answer = match (response, jwt) {
        (IntrospectionResponse::Json(map), None) => map,
        (IntrospectionResponse::Jwt(token), Some((issuer, keys))) => {
            verify_jwt(&token, issuer, keys, client_id, now).await?
        }
        (IntrospectionResponse::Json(_), Some(_)) => {
            return Err(SwapError::Server(
                "a plain JSON introspection answer where a signed one is required".into(),
            ));
        }
        (IntrospectionResponse::Jwt(_), None) => {
            return Err(SwapError::Server(
                "a JWT introspection answer that nothing is configured to verify".into(),
            ));
        }
    };
    if answer.get("active") != Some(&Value::Bool(true)) {
        return Err(SwapError::Inactive);
    }
    let claims = Introspected(Arc::new(answer));
    if !usable_here(&claims, audience, now) {
        return Err(SwapError::Inactive);
    }
    Ok(claims)
}

/// How far ahead of the gateway's clock an `nbf` may be.
const NBF_LEEWAY_SECS: u64 = 60;

/// Whether an active token may be used here and now: not expired, not
/// before its `nbf`, an access token (a refresh or ID token is active too,
/// but is not a credential for an API), and, when an audience is
/// configured, issued for it: otherwise a token for another API of the same
/// authorization server would pass.
fn usable_here(claims: &Introspected, audience: Option<&str>, now: u64) -> bool {
    let map = claims.claims();
    if claims.expires_at().is_some_and(|exp| exp <= now) {
        return false;
    }
    match map.get("nbf") {
        None => {}
        Some(nbf) if nbf.as_u64().is_some_and(|nbf| nbf <= now + NBF_LEEWAY_SECS) => {}
        Some(_) => return false,
    }
    match claims.get_str("token_type") {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("access_token") => {}
        Some(_) => return false,
    }
    let Some(audience) = audience else {
        return true;
    };
    match map.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// Checks an RFC 9701 answer: `typ` token-introspection+jwt, an allowed
/// asymmetric `alg` pinned by the issuer's key, the signature, `iss` =
/// the authorization server, `aud` = this client, a recent `iat`.
async fn verify_jwt(
    token: &str,
    issuer: &str,
    keys: &KeySource,
    client_id: &str,
    now: u64,
) -> Result<Map<String, Value>, SwapError> {
    let bad = |why: &str| SwapError::Server(format!("introspection JWT rejected: {why}"));
    // The same strict reading as every service token: canonical base64url,
    // no duplicate members, no crit / b64 / nested JWTs.
    let compact = jws::parse(token, MAX_RESPONSE_BYTES).map_err(|e| bad(&e.to_string()))?;
    let typ = compact.header.typ.as_deref().unwrap_or("");
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    if !typ.eq_ignore_ascii_case("token-introspection+jwt") {
        return Err(bad("typ is not token-introspection+jwt"));
    }
    let alg: Algorithm = compact
        .header
        .alg
        .parse()
        .map_err(|_| bad("alg not allowed"))?;
    let key = match keys.resolve(compact.header.kid.as_deref()).await {
        KeyLookup::Found(key) => key,
        _ => return Err(bad("no key of the issuer for this kid")),
    };
    key.verify(alg, compact.signing_input.as_bytes(), &compact.signature)
        .map_err(|_| bad("signature"))?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&compact.payload).map_err(|_| bad("not a JSON object"))?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(bad("iss"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("aud"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("iat"))?;
    if iat > now + 60 || iat + MAX_RESPONSE_AGE_SECS < now {
        return Err(bad("iat too far from now"));
    }
    match claims.get("token_introspection") {
        Some(Value::Object(answer)) => Ok(answer.clone()),
        _ => Err(bad("no token_introspection claim")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(value: Value) -> Introspected {
        Introspected(Arc::new(value.as_object().cloned().unwrap_or_default()))
    }

    #[test]
    fn an_active_answer_must_also_be_usable_here() {
        let now = 1_000_000;
        let ok = json!({"active": true, "exp": now + 60, "aud": ["https://api", "https://b"], "token_type": "Bearer"});
        assert!(usable_here(&answer(ok.clone()), Some("https://b"), now));
        assert!(usable_here(&answer(ok), None, now));
        for (why, bad) in [
            ("expired", json!({"active": true, "exp": now})),
            ("not yet valid", json!({"active": true, "nbf": now + 3600})),
            ("nbf not a number", json!({"active": true, "nbf": "soon"})),
            (
                "a refresh token",
                json!({"active": true, "token_type": "refresh_token"}),
            ),
            (
                "a DPoP token as bearer",
                json!({"active": true, "token_type": "DPoP"}),
            ),
        ] {
            assert!(!usable_here(&answer(bad), None, now), "{why}");
        }
        for (why, bad) in [
            (
                "another API",
                json!({"active": true, "aud": "https://other"}),
            ),
            ("no audience", json!({"active": true})),
            (
                "audience of the wrong type",
                json!({"active": true, "aud": 7}),
            ),
        ] {
            assert!(!usable_here(&answer(bad), Some("https://b"), now), "{why}");
        }
    }
}
