//! Reading an introspection answer (RFC 7662), and checking it when it
//! comes as a signed JWT (RFC 9701).

use std::sync::Arc;

use serde_json::{Map, Value};
use svcauth_core::{Algorithm, b64};
use svcauth_jwks::{KeyLookup, KeySource};
use svcauth_sign::{IntrospectionResponse, StsClient};

use crate::error::SwapError;

/// How far an RFC 9701 answer's `iat` may be from now: 5 minutes.
const MAX_RESPONSE_AGE_SECS: u64 = 300;

/// What the authorization server said of an active reference token, put in
/// the request's extensions in validation-only mode.
#[derive(Clone, Debug)]
pub struct Introspected(Arc<Map<String, Value>>);

impl Introspected {
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

/// The claims of an active token, `Inactive`, or why the answer is unusable.
pub(crate) async fn read(
    response: IntrospectionResponse,
    jwt: Option<&(String, KeySource)>,
    sts: &StsClient,
    now: u64,
) -> Result<Introspected, SwapError> {
    let answer = match (response, jwt) {
        (IntrospectionResponse::Json(map), None) => map,
        (IntrospectionResponse::Jwt(token), Some((issuer, keys))) => {
            verify_jwt(&token, issuer, keys, sts.client_id(), now).await?
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
        (_, _) => return Err(SwapError::Server("an unknown introspection answer".into())),
    };
    if answer.get("active") != Some(&Value::Bool(true)) {
        return Err(SwapError::Inactive);
    }
    let claims = Introspected(Arc::new(answer));
    if claims.expires_at().is_some_and(|exp| exp <= now) {
        return Err(SwapError::Inactive);
    }
    Ok(claims)
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
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a JWS"));
    };
    let decode_json = |segment: &str| -> Result<Map<String, Value>, SwapError> {
        let bytes = b64::decode(segment).map_err(|_| bad("not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| bad("not a JSON object"))
    };
    let header_json = decode_json(header)?;
    let typ = header_json.get("typ").and_then(Value::as_str).unwrap_or("");
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    if !typ.eq_ignore_ascii_case("token-introspection+jwt") {
        return Err(bad("typ is not token-introspection+jwt"));
    }
    let alg: Algorithm = header_json
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| bad("alg not allowed"))?;
    let kid = header_json.get("kid").and_then(Value::as_str);
    let key = match keys.resolve(kid).await {
        KeyLookup::Found(key) => key,
        _ => return Err(bad("no key of the issuer for this kid")),
    };
    let signature = b64::decode(signature).map_err(|_| bad("signature not base64url"))?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    key.verify(alg, signing_input.as_bytes(), &signature)
        .map_err(|_| bad("signature"))?;
    let claims = decode_json(payload)?;
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
