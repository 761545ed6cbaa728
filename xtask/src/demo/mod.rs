//! `cargo xtask demo`: the example pair, live, with a transcript of real
//! requests and answers. Every step is checked; any surprise exits non-zero.
//! The HSM step is in `hsm.rs`, the Transaction Token steps in `txn.rs`.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use svcauth_core::{Algorithm, b64};
use svcauth_jwks::SigningKey;
use svcauth_tests::{
    Example, OidcProvider, TOKEN_EXCHANGE, example_binaries, free_port, private_key_jwt_client,
    secret_client,
};

mod hsm;
pub(crate) mod http;
mod txn;
use http::{Transcript, curl, http, token_line, wait_ready, with_token};

const A_ISS: &str = "https://a.internal";
const B_AUD: &str = "https://b.internal";
const C_AUD: &str = "https://c.internal";
const A2_ISS: &str = "https://a2.internal";
const A2_WORKLOAD: &str = "spiffe://example.org/service-a2";
/// The outside client of the provider (the demo's and the soak's).
pub(crate) const EDGE_CLIENT: &str = "edge-app";
pub(crate) const EDGE_SECRET: &str = "edge-app-secret-for-the-demo-only-0123456789";

/// Starts the OpenID Provider (panva's, from the test kit): an outside
/// client (`edge-app`, opaque tokens), the gateway (token exchange,
/// private_key_jwt, its key written to `gateway_key`) and service-b as a
/// resource (ES256 JWT access tokens).
pub(crate) fn start_provider(gateway_key: &Path) -> Result<OidcProvider, String> {
    let needs = "the OpenID Provider needs node and tests/peers/node_modules/oidc-provider";
    let keys = OidcProvider::keygen().ok_or(needs)?;
    let pem = svcauth_jwks::generate_pkcs8_pem(Algorithm::ES256).map_err(|e| e.to_string())?;
    write_private(gateway_key, pem.as_bytes())?;
    let public = SigningKey::from_pkcs8_pem(&pem, None)
        .map_err(|e| e.to_string())?
        .public_jwk();
    let public = serde_json::to_value(public).map_err(|e| e.to_string())?;
    let config = json!({
        "keys": keys,
        "clients": [
            private_key_jwt_client("gateway", public, &[TOKEN_EXCHANGE]),
            secret_client(EDGE_CLIENT, EDGE_SECRET, &["client_credentials"]),
        ],
        "resources": {
            B_AUD: { "alg": "ES256", "ttl": 300 },
            txn::B2_AUD: { "alg": "ES256", "ttl": 300, "scope": "orders:read" },
        },
    });
    OidcProvider::start(config).ok_or_else(|| needs.to_owned())
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| e.to_string())
}

fn base64_std(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn fetches(b_port: u16) -> Result<u64, String> {
    let health = http("GET", b_port, "/healthz", &[], "")?.json();
    Ok(health["issuers"][A_ISS]["fetches"].as_u64().unwrap_or(0))
}

pub(crate) fn run(root: &Path) -> Result<(), String> {
    crate::peers::install_node_peers(root)?;
    eprintln!("demo: building service-a, service-b, gateway and wit-issuer");
    let logs = example_binaries()
        .parent()
        .ok_or("no target directory")?
        .join("demo-logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let log = |name: &str| -> Result<Stdio, String> {
        Ok(std::fs::File::create(logs.join(name))
            .map_err(|e| e.to_string())?
            .into())
    };

    let (a_port, b_port) = (free_port(), free_port());
    let b_url = format!("http://127.0.0.1:{b_port}");
    let txn_ports = txn::ports();
    let a_args = [
        "--issuer",
        A_ISS,
        "--call",
        &format!("{B_AUD}={b_url}"),
        "--call",
        &format!("{C_AUD}={b_url}"),
        "--call",
        &format!("{}=http://127.0.0.1:{}", txn::B2_AUD, txn_ports.1),
        "--danger-expose-tokens",
        // A short overlap, so the rotation step need not wait five minutes.
        "--rotation-overlap-secs",
        "2",
    ];
    let service_a = Example::spawn_on(a_port, "service-a", &a_args, log("service-a.log")?);
    wait_ready(a_port, "service-a", |r| r.status == 200)?;
    // A second service-a that calls with WIMSE credentials: a WIT from the
    // wit-issuer (which trusts its service token) and a proof per request.
    let (a2_port, i_port) = (free_port(), free_port());
    let i_url = format!("http://127.0.0.1:{i_port}");
    let a2_args = [
        "--issuer",
        A2_ISS,
        "--call",
        &format!("{B_AUD}={b_url}"),
        "--wit-issuer",
        &i_url,
        "--danger-expose-tokens",
    ];
    let service_a2 = Example::spawn_on(a2_port, "service-a", &a2_args, log("service-a2.log")?);
    wait_ready(a2_port, "service-a (WIMSE)", |r| r.status == 200)?;
    let i_args = [
        "--trust-domain",
        "example.org",
        "--audience",
        &i_url,
        "--trust",
        &format!("{A2_ISS}=http://127.0.0.1:{a2_port}/.well-known/jwks.json"),
        "--workload",
        &format!("{A2_ISS}={A2_WORKLOAD}"),
    ];
    let wit_issuer = Example::spawn_on(i_port, "wit-issuer", &i_args, log("wit-issuer.log")?);
    wait_ready(i_port, "wit-issuer", |r| r.status == 200)?;
    let gateway_key = logs.join("gateway-key.pem");
    let op = start_provider(&gateway_key)?;
    let a3 = hsm::start(&logs, &b_url, B_AUD)?;
    let (wit_trust, a_trust) = (
        format!("example.org={i_url}/.well-known/jwks.json"),
        format!("{A_ISS}=http://127.0.0.1:{a_port}/.well-known/jwks.json"),
    );
    let mut b_args = vec![
        "--wit-trust",
        &wit_trust,
        "--audience",
        B_AUD,
        "--trust",
        &a_trust,
        "--trust-oidc",
        &op.issuer,
        // Short, so the rotation step need not wait 30 s after B's first fetch.
        "--unknown-kid-cooldown-secs",
        "1",
    ];
    let a3_trust = a3.as_ref().map(|a3| {
        format!(
            "{}=http://127.0.0.1:{}/.well-known/jwks.json",
            hsm::A3_ISS,
            a3.port
        )
    });
    if let Some(trust) = &a3_trust {
        b_args.extend(["--trust", trust]);
    }
    let service_b = Example::spawn_on(b_port, "service-b", &b_args, log("service-b.log")?);

    println!("service-a ({A_ISS}) on 127.0.0.1:{a_port}, publishing /.well-known/jwks.json;");
    println!(
        "  it calls {B_AUD} and also {C_AUD} at service-b's URL (to show a token for the wrong audience),"
    );
    println!(
        "  rotates with a 2 s overlap (--rotation-overlap-secs 2), and shows the tokens it sends (--danger-expose-tokens)"
    );
    println!("service-b ({B_AUD}) on 127.0.0.1:{b_port}, trusting {A_ISS} by that JWKS;");
    println!(
        "  it refetches a JWKS for an unknown kid after 1 s (--unknown-kid-cooldown-secs 1; the default is 30 s)"
    );
    println!(
        "oidc-provider (panva's, via node) at {}, trusted by service-b by discovery",
        op.issuer
    );
    wait_ready(b_port, "service-b", |r| r.json()["ready"] == true)?;
    if let Some(a3) = &a3 {
        println!(
            "a third service-a ({}) on 127.0.0.1:{}, signing with a key inside a SoftHSM2 token (--pkcs11-module), trusted by service-b",
            hsm::A3_ISS,
            a3.port
        );
    }
    println!(
        "wit-issuer (trust domain example.org) on 127.0.0.1:{i_port}; a second service-a ({A2_ISS}) on 127.0.0.1:{a2_port}"
    );
    println!(
        "  gets its WIT there (--wit-issuer) as {A2_WORKLOAD}; service-b trusts example.org's WITs (--wit-trust)"
    );
    wait_ready(a2_port, "service-a's WIT", |r| {
        r.json()["wit"]["workload"] == A2_WORKLOAD
    })?;
    let g_port = free_port();
    let g_args = [
        "--upstream",
        &b_url,
        "--token-endpoint",
        &op.token_endpoint(),
        "--client-id",
        "gateway",
        "--client-key",
        gateway_key.to_str().ok_or("a UTF-8 target directory")?,
        "--audience",
        B_AUD,
    ];
    let gateway = Example::spawn_on(g_port, "gateway", &g_args, log("gateway.log")?);
    wait_ready(g_port, "gateway", |r| r.status == 200)?;
    println!("gateway on 127.0.0.1:{g_port}, exchanging opaque tokens for JWTs to {B_AUD}");
    let op_token = op.token_endpoint();
    let chain = txn::start(txn_ports, a_port, &op.issuer, &op_token, &gateway_key, log)?;
    println!("(logs in {})\n", logs.display());
    let a_kid = http("GET", a_port, "/healthz", &[], "")?.json()["kid"]
        .as_str()
        .unwrap_or("")
        .to_owned();

    let mut t = Transcript {
        steps: 0,
        failures: 0,
    };
    let call = |query: &str, body: &str| {
        let path = format!("/call?{query}");
        Ok::<_, String>((
            curl("POST", a_port, &path, &[], body),
            http("POST", a_port, &path, &[], body)?,
        ))
    };

    // 1. A calls B; B says who called.
    let (command, r) = call(&format!("aud={B_AUD}&path=/whoami"), "")?;
    let who = r.json();
    t.step(
        "A calls B with a token for exactly B; B reports the verified caller (iss, sub, aud, kid)",
        r.status == 200
            && who["iss"] == A_ISS
            && who["sub"] == A_ISS
            && who["aud"] == B_AUD
            && who["kid"] == a_kid.as_str(),
        format!(
            "{command}\n-> {} iss={} sub={} aud={} kid={}",
            r.status, who["iss"], who["sub"], who["aud"], who["kid"]
        ),
    );

    // 2. A token for another audience.
    let (command, r) = call(&format!("aud={C_AUD}&path=/whoami"), "")?;
    t.step(
        "a token minted for another audience (c.internal) is refused by B",
        r.status == 401
            && r.header("www-authenticate")
                .is_some_and(|h| h.contains("invalid_token")),
        format!(
            "{command}\n-> {} WWW-Authenticate: {}",
            r.status,
            r.header("www-authenticate").unwrap_or("-")
        ),
    );

    // 3. A forged token: right issuer and kid, someone else's key.
    let forger = SigningKey::generate(Algorithm::EdDSA).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": a_kid });
    let claims = json!({ "iss": A_ISS, "sub": "admin", "aud": B_AUD, "iat": now, "exp": now + 300, "jti": "forged" });
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string())
    );
    let forged = format!(
        "{input}.{}",
        b64::encode(forger.sign(input.as_bytes()).map_err(|e| e.to_string())?)
    );
    let (shown, r) = with_token(&format!("Bearer {forged}"), "GET", b_port, "/whoami", "")?;
    t.step(
        "a forged token (A's iss and kid, signed by another key) is refused",
        r.status == 401 && r.body.contains("signature"),
        format!("{shown}\n-> {} {}", r.status, r.body),
    );

    // 4. A request-bound call, then the same token with another body.
    let (command, r) = call(
        &format!("aud={B_AUD}&path=/echo&bind=true"),
        "transfer 10 EUR",
    )?;
    let sent = r
        .header("x-svcauth-sent-authorization")
        .unwrap_or("")
        .to_owned();
    t.step(
        "a request-bound call (htm, htu, query_sha256, body_sha256) succeeds",
        r.status == 200 && r.body == "transfer 10 EUR" && !sent.is_empty(),
        format!("{command}\n-> {} '{}'", r.status, r.body),
    );
    let (shown, r) = with_token(&sent, "POST", b_port, "/echo", "transfer 9999 EUR")?;
    t.step(
        "the same bound token with a changed body is refused",
        r.status == 401 && r.body.contains("bound to another request"),
        format!("{shown}\n-> {} {}", r.status, r.body),
    );

    // 5. Rotation: the next key is published first and signs after the
    // overlap; the next call carries it, and B fetches A's JWKS once.
    std::thread::sleep(Duration::from_millis(1100)); // past B's unknown-kid cooldown
    let before = fetches(b_port)?;
    let rotate = curl("POST", a_port, "/rotate", &[], "");
    let rotated = http("POST", a_port, "/rotate", &[], "")?.json();
    let new_kid = rotated["new_kid"].as_str().unwrap_or("").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && http("GET", a_port, "/healthz", &[], "")?.json()["kid"] != new_kid.as_str()
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (command, r) = call(&format!("aud={B_AUD}&path=/whoami"), "")?;
    let after = fetches(b_port)?;
    t.step(
        "A rotates its key: published first, signing 2 s later; the next call succeeds with the new kid, B fetched A's JWKS once",
        r.status == 200
            && r.json()["kid"] == new_kid.as_str()
            && new_kid != a_kid
            && after == before + 1,
        format!(
            "{rotate}\n-> {}\n(2 s later) {command}\n-> {} kid={}; B's JWKS fetches {before} -> {after}",
            rotated["message"].as_str().unwrap_or("-"),
            r.status,
            r.json()["kid"],
        ),
    );

    // 7. The phantom-token edge: an opaque token goes in, B sees a JWT.
    let form = "grant_type=client_credentials";
    let basic = format!(
        "Basic {}",
        base64_std(&format!("{EDGE_CLIENT}:{EDGE_SECRET}"))
    );
    let r = http(
        "POST",
        op.port,
        "/token",
        &[
            ("authorization", &basic),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        form,
    )?;
    let opaque = r.json()["access_token"].as_str().unwrap_or("").to_owned();
    let bearer = format!("Bearer {opaque}");
    let direct = http("GET", b_port, "/whoami", &[("authorization", &bearer)], "")?;
    let via_gateway = curl("GET", g_port, "/whoami", &[("authorization", &bearer)], "");
    let r = http("GET", g_port, "/whoami", &[("authorization", &bearer)], "")?;
    let who = r.json();
    let again = http("GET", g_port, "/whoami", &[("authorization", &bearer)], "")?;
    let exchanges = http("GET", g_port, "/healthz", &[], "")?.json()["cache"]["misses"].clone();
    t.step(
        "an opaque token at the gateway is exchanged once; B sees sub = the client, act = the gateway",
        !opaque.is_empty()
            && !opaque.contains('.')
            && direct.status == 401
            && r.status == 200
            && who["iss"] == op.issuer.as_str()
            && who["sub"] == EDGE_CLIENT
            && who["claims"]["act"]["sub"] == "gateway"
            && who["aud"] == B_AUD
            && again.status == 200
            && exchanges == 1,
        format!(
            "{}\n{via_gateway}\n-> {} sub={} act={}; straight to B: {}; exchanges after 2 calls: {exchanges}",
            token_line(&bearer),
            r.status,
            who["sub"],
            who["claims"]["act"],
            direct.status,
        ),
    );

    // 8. WIMSE: a WIT and a proof per request; the WIT alone is useless.
    let path = format!("/call?aud={B_AUD}&path=/whoami");
    let command = curl("POST", a2_port, &path, &[], "");
    let r = http("POST", a2_port, &path, &[], "")?;
    let who = r.json();
    t.step(
        "A2 calls B with a Workload Identity Token and a fresh proof: B reports the workload and proof = wpt",
        r.status == 200 && who["proof"] == "wpt" && who["workload"] == A2_WORKLOAD,
        format!(
            "{command}\n-> {} proof={} workload={}",
            r.status, who["proof"], who["workload"]
        ),
    );
    let wit = r.header("x-svcauth-sent-wit").unwrap_or("").to_owned();
    let headers = [("workload-identity-token", wit.as_str())];
    let shown = format!(
        "$ WIT='{wit}'\n$ curl -s 'http://127.0.0.1:{b_port}/whoami' -H \"workload-identity-token: $WIT\""
    );
    let r = http("GET", b_port, "/whoami", &headers, "")?;
    t.step(
        "a copied WIT without the workload's key (no proof it can make) is refused with 400",
        !wit.is_empty() && r.status == 400 && r.json()["error"] == "proof_invalid",
        format!("{shown}\n-> {} {}", r.status, r.body),
    );

    // 9. A key that never leaves a PKCS#11 token.
    match &a3 {
        Some(a3) => {
            let path = format!("/call?aud={B_AUD}&path=/whoami");
            let command = curl("POST", a3.port, &path, &[], "");
            let r = http("POST", a3.port, &path, &[], "")?;
            let who = r.json();
            t.step(
                "A3 signs inside a SoftHSM2 token (the key made there by cargo xtask keygen --pkcs11-module, never out of it): B accepts its call",
                r.status == 200 && who["iss"] == hsm::A3_ISS && who["kid"] == a3.kid.as_str(),
                format!(
                    "{}\n{command}\n-> {} iss={} kid={}",
                    a3.keygen, r.status, who["iss"], who["kid"]
                ),
            );
        }
        None => println!(
            "[skip] A3 signing inside a PKCS#11 token: SoftHSM2 is not installed here (apt-get install softhsm2), so this step did not run"
        ),
    }

    // 10-12. Transaction Tokens across the edge.
    txn::steps(&mut t, &chain, &bearer, a_port)?;

    let steps = t.steps;
    drop((
        chain,
        gateway,
        service_b,
        op,
        service_a,
        service_a2,
        wit_issuer,
        a3.map(|a3| a3.example),
    ));
    println!();
    if t.failures == 0 {
        println!("demo: all {steps} steps behaved as described; every process stopped");
        Ok(())
    } else {
        Err(format!(
            "demo: {} step(s) did not behave as described (logs in {})",
            t.failures,
            logs.display()
        ))
    }
}
