//! The demo's Transaction Token steps: a second gateway, the trust domain's
//! Transaction Token Service (`--txn-token-service`), in front of a second
//! service-b that verifies and requires Txn-Tokens (`--txn-trust`,
//! `--trust-domain`, `--require-txn-token`). The last service knows who
//! asked, for what, and through which path; a Txn-Token from outside never
//! gets in; a call without one is refused.

use std::path::Path;
use std::process::Stdio;

use svcauth_tests::{Example, free_port};

use super::http::{Transcript, curl, http, wait_ready};
use super::{A_ISS, EDGE_CLIENT};

/// The second service-b's audience (a resource of the provider).
pub(crate) const B2_AUD: &str = "https://b2.internal";
const DOMAIN: &str = "demo.example";
const GATEWAY_WORKLOAD: &str = "https://edge.demo.example";

/// The second gateway and service-b, running.
pub(crate) struct TxnChain {
    gateway: Example,
    /// Kept running until the chain is dropped.
    _b2: Example,
}

/// The ports of the second gateway and service-b, chosen before service-a
/// starts (it is told where B2 is).
pub(crate) fn ports() -> (u16, u16) {
    (free_port(), free_port())
}

/// Starts service-b #2 (trusting A, the provider and the gateway's Txn-Tokens)
/// and gateway #2 in front of it.
pub(crate) fn start(
    (g_port, b2_port): (u16, u16),
    a_port: u16,
    op_issuer: &str,
    token_endpoint: &str,
    gateway_key: &Path,
    log: impl Fn(&str) -> Result<Stdio, String>,
) -> Result<TxnChain, String> {
    let tts = format!("http://127.0.0.1:{g_port}");
    let b2_args = [
        "--audience".into(),
        B2_AUD.into(),
        "--trust".into(),
        format!("{A_ISS}=http://127.0.0.1:{a_port}/.well-known/jwks.json"),
        "--trust-oidc".into(),
        op_issuer.into(),
        "--txn-trust".into(),
        format!("{tts}={tts}/txn-token-service/jwks.json"),
        "--trust-domain".into(),
        DOMAIN.into(),
        "--require-txn-token".into(),
        "--unknown-kid-cooldown-secs".into(),
        "1".into(),
    ];
    let b2 = Example::spawn_on(b2_port, "service-b", &b2_args, log("service-b2.log")?);
    wait_ready(b2_port, "service-b #2", |r| r.status == 200)?;
    let g_args = [
        "--upstream",
        &format!("http://127.0.0.1:{b2_port}"),
        "--token-endpoint",
        token_endpoint,
        "--client-id",
        "gateway",
        "--client-key",
        gateway_key.to_str().ok_or("a UTF-8 target directory")?,
        "--audience",
        B2_AUD,
        "--txn-token-service",
        "--trust-domain",
        DOMAIN,
        "--txn-workload",
        GATEWAY_WORKLOAD,
    ];
    let gateway = Example::spawn_on(g_port, "gateway", &g_args, log("gateway2.log")?);
    wait_ready(g_port, "gateway #2", |r| r.status == 200)?;
    println!(
        "gateway #2 on 127.0.0.1:{g_port}, also the Transaction Token Service of {DOMAIN} (--txn-token-service),"
    );
    println!(
        "  in front of service-b #2 ({B2_AUD}) on 127.0.0.1:{b2_port}, which requires Txn-Tokens (--require-txn-token)"
    );
    Ok(TxnChain { gateway, _b2: b2 })
}

/// Steps 10 to 12, with the outside client's opaque `bearer`.
pub(crate) fn steps(
    t: &mut Transcript,
    chain: &TxnChain,
    bearer: &str,
    a_port: u16,
) -> Result<(), String> {
    let g_port = chain.gateway.port();
    let headers = [("authorization", bearer)];
    let command = curl("GET", g_port, "/whoami", &headers, "");
    std::thread::sleep(std::time::Duration::from_millis(1100)); // B2's first fetch of the gateway's JWKS may have failed
    let r = http("GET", g_port, "/whoami", &headers, "")?;
    let who = r.json();
    let txn = &who["txn_token"];
    t.step(
        "gateway #2 mints a Txn-Token at the edge; B2 sees who asked (sub), for what (scope), from where (rctx) and through which workload (req_wl), beside its caller (the gateway, acting for the client)",
        r.status == 200
            && txn["sub"] == EDGE_CLIENT
            && txn["aud"] == DOMAIN
            && txn["scope"] == "orders:read"
            && txn["req_wl"] == GATEWAY_WORKLOAD
            && txn["rctx"]["req_ip"] == "127.0.0.1"
            && txn["rctx"]["req_method"] == "GET"
            && txn["rctx"]["req_path"] == "/whoami"
            && who["claims"]["act"]["sub"] == "gateway",
        format!(
            "{command}\n-> {} caller sub={} act={}\n   txn_token: txn={} sub={} scope={} req_wl={} rctx={}",
            r.status, who["sub"], who["claims"]["act"], txn["txn"], txn["sub"], txn["scope"], txn["req_wl"], txn["rctx"]
        ),
    );

    // A Txn-Token from outside: the gateway drops it and mints its own.
    let forged = "eyJhbGciOiJub25lIiwidHlwIjoidHhudG9rZW4rand0In0.eyJzdWIiOiJhZG1pbiJ9.";
    let headers = [("authorization", bearer), ("txn-token", forged)];
    let command = curl("GET", g_port, "/whoami", &headers, "");
    let r = http("GET", g_port, "/whoami", &headers, "")?;
    let again = &r.json()["txn_token"];
    t.step(
        "a Txn-Token sent from outside (sub=admin, alg none) never gets in: the gateway drops it and mints its own, a new transaction",
        r.status == 200 && again["sub"] == EDGE_CLIENT && again["txn"] != txn["txn"],
        format!("{command}\n-> {} txn_token sub={} txn={}", r.status, again["sub"], again["txn"]),
    );

    // A valid service token alone is not enough where one is required.
    let path = format!("/call?aud={B2_AUD}&path=/whoami");
    let command = curl("POST", a_port, &path, &[], "");
    let r = http("POST", a_port, &path, &[], "")?;
    t.step(
        "A calls B2 with a valid service token but no Txn-Token: refused, 403 txn_token_required",
        r.status == 403 && r.json()["error"] == "txn_token_required",
        format!("{command}\n-> {} {}", r.status, r.body),
    );
    Ok(())
}
