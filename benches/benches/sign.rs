//! Outbound signing: the layer's cost on a token-cache hit against the bare
//! client service; the cost of a mint per algorithm against jsonwebtoken
//! `encode` and the raw signature with a pre-parsed key; and bound mode (a
//! fresh token per request, bound to method, URL and body) through the layer
//! against the raw signature plus the SHA-256 of the body.
#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::Full;
use jsonwebtoken::{EncodingKey, Header, encode};
use svcauth_core::Algorithm;
use svcauth_jwks::{KeyRing, SigningKey, generate_pkcs8_pem};
use svcauth_sign::{SelfSigned, SignLayer, Signer, TokenRequest};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let signer = Signer::self_signed("https://a.internal", ring)
        .unwrap()
        .audience("https://b.internal", "https://b.internal")
        .build()
        .unwrap();
    rt.block_on(signer.token("https://b.internal")).unwrap();
    let bare = service_fn(|req: Request<Full<Bytes>>| async move { Ok::<_, Infallible>(req) });
    let signed = ServiceBuilder::new()
        .layer(SignLayer::new(signer))
        .service(bare);
    // A realistic request already has headers (so the header map exists).
    let request = || {
        Request::get("https://b.internal/orders")
            .header("accept", "application/json")
            .body(Full::default())
            .unwrap()
    };

    let mut group = c.benchmark_group("sign_layer");
    group.bench_function("bare_client", |b| {
        b.to_async(&rt).iter(|| async {
            let mut svc = bare;
            svc.ready().await.unwrap().call(request()).await.unwrap()
        })
    });
    group.bench_function("sign_layer_cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let mut svc = signed.clone();
            svc.ready().await.unwrap().call(request()).await.unwrap()
        })
    });
    group.finish();
}

/// The output of a future that is ready when first polled, as a mint with a
/// key in this process is: measured without a runtime, as a sync call.
fn at_once<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a local key signs without waiting"),
    }
}

fn mint(c: &mut Criterion) {
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let pem = generate_pkcs8_pem(alg).unwrap();
        let key = SigningKey::from_pkcs8_pem(&pem, Some(alg)).unwrap();
        let source = SelfSigned::new(
            "https://a.internal",
            KeyRing::new(SigningKey::from_pkcs8_pem(&pem, Some(alg)).unwrap()),
        )
        .unwrap();
        let encoding = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap();
        let claims = serde_json::json!({ "iss": "https://a.internal", "sub": "https://a.internal",
            "aud": "https://b.internal", "iat": 1_700_000_000u64, "exp": 1_700_000_300u64, "jti": "AAAAAAAAAAAAAAAAAAAAAA" });
        let header = Header::new(alg.as_str().parse().unwrap());
        // The raw signature signs an input as long as a minted token's.
        let sample = source.mint(TokenRequest {
            audience: "https://b.internal",
            binding: None,
            on_behalf_of: None,
        });
        let sample = at_once(sample).unwrap();
        let input = vec![b'x'; sample.as_str().rfind('.').unwrap()];

        let mut group = c.benchmark_group(format!("mint/{alg}"));
        group.bench_function("raw_signature_preparsed", |b| {
            b.iter(|| key.sign(black_box(&input)).unwrap())
        });
        group.bench_function("jsonwebtoken_encode", |b| {
            b.iter(|| encode(&header, black_box(&claims), &encoding).unwrap())
        });
        group.bench_function("svcauth_mint", |b| {
            b.iter(|| {
                at_once(source.mint(TokenRequest {
                    audience: black_box("https://b.internal"),
                    binding: None,
                    on_behalf_of: None,
                }))
                .unwrap()
            })
        });
        group.finish();
    }
}

fn bound(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cases = [
        (Algorithm::EdDSA, 1024),
        (Algorithm::EdDSA, 65536),
        (Algorithm::ES256, 1024),
        (Algorithm::ES256, 65536),
        (Algorithm::RS256, 1024),
    ];
    for (alg, size) in cases {
        let pem = generate_pkcs8_pem(alg).unwrap();
        let key = SigningKey::from_pkcs8_pem(&pem, Some(alg)).unwrap();
        let ring = KeyRing::new(SigningKey::from_pkcs8_pem(&pem, Some(alg)).unwrap());
        let signer = Signer::self_signed("https://a.internal", ring)
            .unwrap()
            .bound_audience("https://b.internal", "https://b.internal")
            .build()
            .unwrap();
        let bare = service_fn(|req: Request<Full<Bytes>>| async move { Ok::<_, Infallible>(req) });
        let signed = ServiceBuilder::new()
            .layer(SignLayer::new(signer))
            .service(bare);
        let body = Bytes::from(vec![b'{'; size]);
        let request = || {
            Request::post("https://b.internal/orders")
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .unwrap()
        };
        // The raw signature signs an input as long as a bound token's.
        let sent = rt.block_on(signed.clone().oneshot(request())).unwrap();
        let token = sent.headers()["authorization"].to_str().unwrap()["Bearer ".len()..].to_owned();
        let input = vec![b'x'; token.rfind('.').unwrap()];

        let mut group = c.benchmark_group(format!("bound/{alg}/{}KiB", size / 1024));
        group.bench_function("raw_signature_plus_body_sha256", |b| {
            b.to_async(&rt).iter(|| async {
                let request = request();
                let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
                black_box(hash);
                black_box(key.sign(black_box(&input)).unwrap());
                let mut svc = bare;
                svc.ready().await.unwrap().call(request).await.unwrap()
            })
        });
        group.bench_function("sign_layer_bound", |b| {
            b.to_async(&rt).iter(|| async {
                let mut svc = signed.clone();
                svc.ready().await.unwrap().call(request()).await.unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, layer, mint, bound);
criterion_main!(benches);
