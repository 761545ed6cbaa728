//! The Txn-Token Request endpoint (RFC 8693, profiled by the draft) over
//! HTTP on loopback: workloads authenticated by a service token or a
//! `private_key_jwt` assertion; self-signed, unsigned and replacement
//! subjects; every refusal an RFC 6749 error.

use svcauth_core::txn::TOKEN_TYPE;
use svcauth_tests::unix_now;

use super::*;

const W: &str = "https://w.internal";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

struct Endpoint {
    url: String,
    tts: Tts,
    w: Arc<SigningKey>,
    http: reqwest::Client,
}

impl Endpoint {
    async fn start() -> Endpoint {
        let base = Tts::start().await;
        let w = Arc::new(SigningKey::generate(Algorithm::ES256).unwrap());
        let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwks = json!({ "keys": [w.public_jwk(), stranger.public_jwk()] }).to_string();
        let keys = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 1 << 16).unwrap());
        let workloads = Verifier::builder(TTS_ISS)
            .trust(W, keys.clone())
            .trust("https://idle.internal", keys)
            .build()
            .unwrap();
        let service =
            TransactionTokenService::builder(DOMAIN, TTS_ISS, base.service.key_ring().clone())
                .authenticate_workloads(workloads)
                .allow_requester(W, ["orders.read", "reports.run"])
                .build()
                .unwrap();
        let url = format!(
            "http://{}/token",
            svcauth_tests::serve(service.router("/token")).await
        );
        Endpoint {
            url,
            tts: Tts {
                service,
                jwks_url: base.jwks_url,
            },
            w,
            http: reqwest::Client::new(),
        }
    }

    fn jwt(&self, claims: Value) -> String {
        self.w.sign_jws(claims.to_string().as_bytes()).unwrap()
    }

    /// W's service token for the TTS.
    fn service_token(&self) -> String {
        self.w
            .sign_jws(&svcauth_tests::service_claims(W, TTS_ISS))
            .unwrap()
    }

    fn self_signed(&self, sub: &str) -> String {
        let now = unix_now();
        self.jwt(json!({ "iss": W, "sub": sub, "aud": TTS_ISS, "iat": now, "exp": now + 60 }))
    }

    async fn post(
        &self,
        auth: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, http::HeaderMap, Value) {
        let mut request = self.http.post(&self.url).form(form);
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap())
    }

    async fn ask(
        &self,
        subject: &str,
        subject_type: &str,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", EXCHANGE),
            ("requested_token_type", TOKEN_TYPE),
            ("audience", DOMAIN),
            ("scope", scope),
            ("subject_token", subject),
            ("subject_token_type", subject_type),
        ];
        form.extend_from_slice(extra);
        let token = self.service_token();
        let (status, _, body) = self.post(Some(&token), &form).await;
        (status, body)
    }

    async fn verified(&self, token: &str) -> Arc<svcauth_verify::TxnTokenClaims> {
        let verifier = Verifier::builder("https://any.internal")
            .trust_txn_tokens(DOMAIN, TTS_ISS, self.tts.keys())
            .build()
            .unwrap();
        verifier
            .verify_txn_token(&http::HeaderValue::from_str(token).unwrap())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn workloads_start_and_replace_transactions_within_their_scopes() {
    let e = Endpoint::start().await;
    // A scheduled job starts a transaction for itself.
    let job = e.self_signed("batch-job-7");
    let context = r#"{"req_ip":"10.0.0.9","trigger":"cron"}"#;
    let details = r#"{"report":"daily"}"#;
    let extra = [("request_context", context), ("request_details", details)];
    let (status, body) = e
        .ask(
            &job,
            "urn:ietf:params:oauth:token-type:self_signed",
            "reports.run",
            &extra,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "N_A");
    assert_eq!(body["issued_token_type"], TOKEN_TYPE);
    assert!(body.get("refresh_token").is_none());
    let txn = e.verified(body["access_token"].as_str().unwrap()).await;
    assert_eq!((txn.sub(), txn.scope()), ("batch-job-7", "reports.run"));
    assert_eq!(txn.requesting_workloads().collect::<Vec<_>>(), [W]);
    assert_eq!(txn.rctx().unwrap()["trigger"], "cron");
    assert_eq!(txn.tctx().unwrap()["report"], "daily");

    let (status, body) = e
        .ask(
            r#"{"sub":"user-9"}"#,
            "urn:ietf:params:oauth:token-type:unsigned_json",
            "orders.read",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        e.verified(body["access_token"].as_str().unwrap())
            .await
            .sub(),
        "user-9"
    );

    // Replacement: narrower, same transaction, never longer.
    let original = e.tts.mint().await;
    let old = e.verified(&original).await;
    let (status, body) = e
        .ask(
            &original,
            TOKEN_TYPE,
            "orders.read",
            &[("request_details", r#"{"order":"42"}"#)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let new = e.verified(body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (new.txn(), new.sub(), new.scope()),
        (old.txn(), "alice", "orders.read")
    );
    assert_eq!(new.claims().aud, old.claims().aud);
    assert!(new.expires_at() <= old.expires_at());
    assert_eq!(new.tctx().unwrap()["tenant"], "blue");
    assert_eq!(new.tctx().unwrap()["order"], "42");
    assert_eq!(new.rctx(), old.rctx());
    assert_eq!(
        new.requesting_workloads().collect::<Vec<_>>(),
        ["https://gateway.example.org", W]
    );
}

#[tokio::test]
async fn txn_token_requests_are_refused_with_rfc_6749_errors() {
    let e = Endpoint::start().await;
    let job = e.self_signed("batch-job-7");
    let self_signed = "urn:ietf:params:oauth:token-type:self_signed";
    let original = e.tts.mint().await;
    let expired =
        TransactionTokenService::builder(DOMAIN, TTS_ISS, e.tts.service.key_ring().clone())
            .clock(Arc::new(svcauth_core::ManualClock::at_secs(
                unix_now() - 3600,
            )))
            .build()
            .unwrap()
            .mint(alice())
            .await
            .unwrap();
    let someone_elses = {
        let now = unix_now();
        let other = SigningKey::generate(Algorithm::ES256).unwrap();
        let claims = json!({ "iss": W, "sub": "x", "aud": TTS_ISS, "iat": now, "exp": now + 60 });
        other.sign_jws(claims.to_string().as_bytes()).unwrap()
    };
    let cases: Vec<(&str, (u16, Value), &str)> = vec![
        (
            "wider than the requester may",
            e.ask(&job, self_signed, "admin", &[]).await,
            "invalid_scope",
        ),
        (
            "a replacement widening scope",
            e.ask(&original, TOKEN_TYPE, "orders.read admin", &[]).await,
            "invalid_scope",
        ),
        (
            "a replacement changing tctx",
            e.ask(
                &original,
                TOKEN_TYPE,
                "orders.read",
                &[("request_details", r#"{"tenant":"red"}"#)],
            )
            .await,
            "invalid_request",
        ),
        (
            "an expired Txn-Token replaced",
            e.ask(&expired, TOKEN_TYPE, "orders.read", &[]).await,
            "invalid_grant",
        ),
        (
            "a self-signed token of another key",
            e.ask(&someone_elses, self_signed, "reports.run", &[]).await,
            "invalid_grant",
        ),
        (
            "a refresh token",
            e.ask(
                "r1",
                "urn:ietf:params:oauth:token-type:refresh_token",
                "orders.read",
                &[],
            )
            .await,
            "invalid_request",
        ),
        (
            "an unknown subject type",
            e.ask("x", "urn:example:mystery", "orders.read", &[]).await,
            "invalid_request",
        ),
        (
            "an access token, with no swap configured",
            e.ask(
                "opaque",
                "urn:ietf:params:oauth:token-type:access_token",
                "orders.read",
                &[],
            )
            .await,
            "invalid_request",
        ),
        (
            "a repeated parameter",
            e.ask(&job, self_signed, "reports.run", &[("audience", DOMAIN)])
                .await,
            "invalid_request",
        ),
        (
            "unsigned JSON without sub",
            e.ask(
                "{}",
                "urn:ietf:params:oauth:token-type:unsigned_json",
                "orders.read",
                &[],
            )
            .await,
            "invalid_grant",
        ),
    ];
    for (name, (status, body), code) in cases {
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{name}: {body}"
        );
    }
    let base = |grant: &'static str, requested: &'static str, audience: &'static str| {
        vec![
            ("grant_type", grant),
            ("requested_token_type", requested),
            ("audience", audience),
            ("scope", "reports.run"),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:unsigned_json",
            ),
            ("subject_token", r#"{"sub":"u"}"#),
        ]
    };
    let token = e.service_token();
    for (form, code) in [
        (
            base("client_credentials", TOKEN_TYPE, DOMAIN),
            "unsupported_grant_type",
        ),
        (
            base(
                EXCHANGE,
                "urn:ietf:params:oauth:token-type:access_token",
                DOMAIN,
            ),
            "invalid_request",
        ),
        (
            base(EXCHANGE, TOKEN_TYPE, "other.example"),
            "invalid_target",
        ),
    ] {
        let (status, headers, body) = e.post(Some(&token), &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{body}"
        );
        assert_eq!(headers["cache-control"], "no-store");
    }

    // Client authentication.
    let form = base(EXCHANGE, TOKEN_TYPE, DOMAIN);
    let (status, headers, body) = e.post(None, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, _, body) = e.post(Some(&original), &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a Txn-Token is no credential"
    );
    let idle = SigningKey::generate(Algorithm::ES256).unwrap();
    let idle_token = idle
        .sign_jws(&svcauth_tests::service_claims(
            "https://idle.internal",
            TTS_ISS,
        ))
        .unwrap();
    let (status, _, body) = e.post(Some(&idle_token), &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "unknown key: {body}"
    );
}

#[tokio::test]
async fn private_key_jwt_assertions_authenticate_once() {
    let e = Endpoint::start().await;
    let now = unix_now();
    let assertion = e.jwt(json!({
        "iss": W, "sub": W, "aud": TTS_ISS, "iat": now, "exp": now + 60, "jti": "assertion-1",
    }));
    let form = [
        ("grant_type", EXCHANGE),
        ("requested_token_type", TOKEN_TYPE),
        ("audience", DOMAIN),
        ("scope", "reports.run"),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:unsigned_json",
        ),
        ("subject_token", r#"{"sub":"u"}"#),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", &assertion),
        ("client_id", W),
    ];
    let (status, _, body) = e.post(None, &form).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = e.post(None, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "replayed: {body}"
    );
    let not_self = e.jwt(json!({
        "iss": W, "sub": "someone", "aud": TTS_ISS, "iat": now, "exp": now + 60, "jti": "assertion-2",
    }));
    let mut form = form.to_vec();
    form[7] = ("client_assertion", &not_self);
    let (status, _, _) = e.post(None, &form).await;
    assert_eq!(status, 401);
}
