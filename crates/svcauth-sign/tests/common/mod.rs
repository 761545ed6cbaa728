//! Fixtures: service B (a real axum server behind svcauth-verify), A's JWKS
//! server, and a small OAuth token server, all on loopback.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;
use svcauth_core::{Algorithm, b64};
use svcauth_jwks::{JwksService, KeyRing, KeySet, KeySource, SigningKey};
use svcauth_sign::{
    ClientAuth, OnBehalfOf, SelfSigned, Signer, StsClient, TokenRequest, TokenSource,
};
use svcauth_verify::{Caller, Verifier, VerifyLayer};

pub const ISS_A: &str = "https://a.internal";

/// `app` on a free loopback port; its base URL.
pub async fn serve(app: Router) -> String {
    format!("http://{}", svcauth_tests::serve(app).await)
}

/// A's key ring, published on loopback. Returns the JWKS URL.
pub async fn publish(ring: &KeyRing) -> String {
    let url = serve(
        Router::new().route_service("/.well-known/jwks.json", JwksService::new(ring.clone())),
    )
    .await;
    format!("{url}/.well-known/jwks.json")
}

/// Service B: `/whoami` answers the verified claims as JSON, `/echo` the body.
pub struct ServiceB {
    pub url: String,
    pub audience: String,
    pub seen_authorization: Arc<Mutex<Vec<String>>>,
}

pub async fn service_b(trust: Vec<(&str, KeySource)>) -> ServiceB {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let audience = url.clone();
    let mut verifier = Verifier::builder(&audience);
    for (iss, keys) in trust {
        verifier = verifier.trust(iss, keys);
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/whoami",
            get(|caller: Caller| async move {
                axum::Json(json!({
                    "iss": caller.iss(), "sub": caller.sub(), "kid": caller.kid(),
                    "claims": serde_json::from_slice::<serde_json::Value>(caller.raw_json()).unwrap(),
                }))
            }),
        )
        .route("/echo", any(|body: axum::body::Bytes| async move { body }))
        .layer(VerifyLayer::new(verifier.build().unwrap()))
        .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            let value = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned());
            record.lock().unwrap().push(value.unwrap_or_default());
            next.run(req)
        }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    ServiceB {
        url,
        audience,
        seen_authorization: seen,
    }
}

pub fn remote(jwks_url: &str) -> KeySource {
    KeySource::remote(jwks_url)
        .unwrap()
        .background_refresh(false)
        .build()
        .unwrap()
}

pub fn fixed(ring: &KeyRing) -> KeySource {
    KeySource::fixed(KeySet::from_jwks(ring.state().jwks(), 65536).unwrap())
}

pub fn ring(alg: Algorithm) -> KeyRing {
    KeyRing::new(SigningKey::generate(alg).unwrap())
}

/// The claims of a token, unverified (tests only).
pub fn claims_of(token: &str) -> serde_json::Value {
    serde_json::from_slice(&b64::decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

pub fn header_of(token: &str) -> serde_json::Value {
    serde_json::from_slice(&b64::decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum StsMode {
    Ok,
    InvalidClient,
    Status500,
    Garbage,
}

/// A small OAuth 2.0 token server: client credentials and token exchange,
/// clients authenticated by private_key_jwt (checked with svcauth-verify)
/// or client_secret_basic. It signs access tokens with its own ring.
#[derive(Clone)]
pub struct Sts {
    pub url: String,
    pub issuer: String,
    pub ring: KeyRing,
    pub hits: Arc<AtomicUsize>,
    pub mode: Arc<Mutex<StsMode>>,
    pub lifetime: u64,
    assertion_verifier: Option<Verifier>,
    secret: Option<(String, String)>,
    last_form: Arc<Mutex<Vec<(String, String)>>>,
}

impl Sts {
    pub async fn start(
        client_key: Option<&SigningKey>,
        secret: Option<(&str, &str)>,
        client_id: &str,
    ) -> Sts {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let endpoint = format!("{url}/token");
        let assertion_verifier = client_key.map(|key| {
            let keys = KeySource::fixed(
                KeySet::from_jwks(
                    json!({"keys":[key.public_jwk()]}).to_string().as_bytes(),
                    65536,
                )
                .unwrap(),
            );
            Verifier::builder(&endpoint)
                .trust(client_id, keys)
                .build()
                .unwrap()
        });
        let sts = Sts {
            url: endpoint,
            issuer: url.clone(),
            ring: ring(Algorithm::EdDSA),
            hits: Arc::new(AtomicUsize::new(0)),
            mode: Arc::new(Mutex::new(StsMode::Ok)),
            lifetime: 300,
            assertion_verifier,
            secret: secret.map(|(id, s)| (id.to_owned(), s.to_owned())),
            last_form: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .route("/token", post(token_endpoint))
            .with_state(sts.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        sts
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn form(&self, name: &str) -> Option<String> {
        self.last_form
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    pub fn keys(&self) -> KeySource {
        fixed(&self.ring)
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

async fn token_endpoint(State(sts): State<Sts>, headers: HeaderMap, body: String) -> Response {
    sts.hits.fetch_add(1, Ordering::SeqCst);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    *sts.last_form.lock().unwrap() = form.clone();
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match *sts.mode.lock().unwrap() {
        StsMode::Ok => {}
        StsMode::InvalidClient => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client"),
        StsMode::Status500 => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        StsMode::Garbage => return (StatusCode::OK, "<html>oops</html>").into_response(),
    }
    // Client authentication.
    let client = if let Some(verifier) = &sts.assertion_verifier {
        if get("client_assertion_type").as_deref()
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        match verifier
            .verify(&get("client_assertion").unwrap_or_default())
            .await
        {
            Ok(claims) => claims.sub().to_owned(),
            Err(_) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
        }
    } else {
        let (id, secret) = sts.secret.clone().unwrap();
        // RFC 6749 §2.3.1: both parts form-urlencoded, then Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let expected = format!(
            "Basic {}",
            base64_std(&format!("{}:{}", enc(&id), enc(&secret)))
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        id
    };
    let Some(audience) = get("resource").or_else(|| get("audience")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target");
    };
    let (sub, act) = match get("grant_type").as_deref() {
        Some("client_credentials") => (client.clone(), None),
        Some("urn:ietf:params:oauth:grant-type:token-exchange") => {
            // The subject token here is any JWT whose sub we take (a real
            // STS would verify it; the provider tests do).
            let Some(subject) = get("subject_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
            };
            let Some(sub) = subject
                .split('.')
                .nth(1)
                .and_then(|p| b64::decode(p).ok())
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
                .and_then(|c| c["sub"].as_str().map(str::to_owned))
            else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            (sub, Some(svcauth_core::Actor::new(client.clone())))
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    };
    let source = SelfSigned::new(&sts.issuer, sts.ring.clone())
        .unwrap()
        .lifetime(Duration::from_secs(sts.lifetime))
        .unwrap();
    let on_behalf = OnBehalfOf::Subject(sub);
    let token = source
        .mint(TokenRequest {
            audience: &audience,
            binding: None,
            on_behalf_of: Some(&on_behalf),
        })
        .await
        .unwrap();
    // SelfSigned names the STS as actor; an STS names the client (token
    // exchange) or no actor at all (client credentials).
    let token = restamp_act(&sts, token.as_str(), act.map(|a| a.sub).as_deref());
    axum::Json(
        json!({ "access_token": token, "token_type": "Bearer", "expires_in": sts.lifetime,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token" }),
    )
    .into_response()
}

fn restamp_act(sts: &Sts, token: &str, actor: Option<&str>) -> String {
    let mut claims = claims_of(token);
    match actor {
        Some(actor) => claims["act"] = json!({ "sub": actor }),
        None => {
            claims.as_object_mut().unwrap().remove("act");
        }
    }
    let signer = sts.ring.signer();
    let key = signer.local().expect("the test STS signs in memory");
    key.sign_jws(claims.to_string().as_bytes()).unwrap()
}

fn base64_std(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// An STS that knows `svc-a` by a fresh `alg` key (private_key_jwt), a
/// service-b that trusts the STS's tokens, and a signer for service-b whose
/// token source (`source`) asks the STS as `svc-a`.
pub async fn signer_via_sts<S: TokenSource>(
    alg: Algorithm,
    source: impl FnOnce(StsClient) -> S,
) -> (Sts, ServiceB, Signer) {
    let client_key = SigningKey::generate(alg).unwrap();
    let sts = Sts::start(Some(&client_key), None, "svc-a").await;
    let b = service_b(vec![(&sts.issuer, sts.keys())]).await;
    let client =
        StsClient::new(&sts.url, "svc-a", ClientAuth::private_key_jwt(client_key)).unwrap();
    let signer = Signer::builder(source(client))
        .audience(&b.url, &b.audience)
        .build()
        .unwrap();
    (sts, b, signer)
}

pub fn signer_to(b: &ServiceB, ring: &KeyRing) -> Signer {
    Signer::self_signed(ISS_A, ring.clone())
        .unwrap()
        .audience(&b.url, &b.audience)
        .build()
        .unwrap()
}
