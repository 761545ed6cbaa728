//! The key sources service-b trusts, from its flags: `--trust`,
//! `--trust-oidc`, `--wit-trust`, `--spiffe-bundle` and `--txn-trust`, each fetched through
//! the client `--ca-file` / `--client-cert` configure.

use std::time::Duration;

use svcauth_jwks::{KeySource, SvidKind};

use crate::Args;

/// The sources, by what they verify.
pub(crate) struct Sources {
    /// Bearer issuers: `(iss, keys)`.
    pub(crate) sources: Vec<(String, KeySource)>,
    /// WIT trust domains: `(trust domain, keys)`.
    pub(crate) wit_sources: Vec<(String, KeySource)>,
    /// JWT-SVID trust domains: `(trust domain, keys)`.
    pub(crate) svid_sources: Vec<(String, KeySource)>,
    /// Transaction Token Services: `(iss, keys)`.
    pub(crate) txn_sources: Vec<(String, KeySource)>,
}

fn split_pair(pair: &str) -> Result<(&str, &str), String> {
    pair.split_once('=')
        .ok_or_else(|| format!("expected ISS=URL, got {pair:?}"))
}

/// Every key source the flags name (none is fetched yet).
pub(crate) fn sources(args: &Args) -> Result<Sources, String> {
    // Key fetches through a client with --ca-file / --client-cert, when given.
    let keys_client = args.tls.keys_client(args.client_key.as_deref())?;
    let with_client = |builder: svcauth_jwks::RemoteBuilder| match &keys_client {
        Some(client) => builder.http_client(client.clone()),
        None => builder,
    };
    let mut sources = Vec::new();
    let mut wit_sources = Vec::new();
    for pair in &args.trust {
        let (iss, url) = split_pair(pair)?;
        let source = with_client(KeySource::remote(url).map_err(|e| e.to_string())?)
            .cooldown(Duration::from_secs(args.unknown_kid_cooldown_secs))
            .build()
            .map_err(|e| format!("--trust {pair}: {e}"))?;
        sources.push((iss.to_owned(), source));
    }
    for issuer in &args.trust_oidc {
        let mut source = with_client(KeySource::discover(issuer).map_err(|e| e.to_string())?)
            .cooldown(Duration::from_secs(args.unknown_kid_cooldown_secs));
        for origin in &args.allow_jwks_uri_origin {
            source = source
                .allow_jwks_uri_origin(origin)
                .map_err(|e| format!("--allow-jwks-uri-origin {origin}: {e}"))?;
        }
        let source = source
            .build()
            .map_err(|e| format!("--trust-oidc {issuer}: {e}"))?;
        sources.push((issuer.clone(), source));
    }
    for pair in &args.wit_trust {
        let (domain, url) = pair
            .split_once('=')
            .ok_or_else(|| format!("--wit-trust: expected TRUST_DOMAIN=JWKS_URL, got {pair:?}"))?;
        let source = with_client(KeySource::remote(url).map_err(|e| e.to_string())?)
            .cooldown(Duration::from_secs(args.unknown_kid_cooldown_secs))
            .build()
            .map_err(|e| format!("--wit-trust {pair}: {e}"))?;
        wit_sources.push((domain.to_owned(), source));
    }
    let mut svid_sources = Vec::new();
    for pair in &args.spiffe_bundle {
        let (domain, bundle) = pair.split_once('=').ok_or_else(|| {
            format!("--spiffe-bundle: expected TRUST_DOMAIN=BUNDLE, got {pair:?}")
        })?;
        for kind in [SvidKind::Jwt, SvidKind::Wit] {
            let source = if bundle.starts_with("https://") || bundle.starts_with("http://") {
                with_client(KeySource::spiffe_bundle(bundle, kind).map_err(|e| e.to_string())?)
            } else {
                KeySource::spiffe_bundle_file(bundle, kind)
            };
            let source = source
                .cooldown(Duration::from_secs(args.unknown_kid_cooldown_secs))
                .build()
                .map_err(|e| format!("--spiffe-bundle {pair}: {e}"))?;
            match kind {
                SvidKind::Wit => wit_sources.push((domain.to_owned(), source)),
                _ => svid_sources.push((domain.to_owned(), source)),
            }
        }
    }
    let mut txn_sources = Vec::new();
    for pair in &args.txn_trust {
        let (tts, url) = pair
            .split_once('=')
            .ok_or_else(|| format!("--txn-trust: expected TTS_ISSUER=JWKS_URL, got {pair:?}"))?;
        let source = with_client(KeySource::remote(url).map_err(|e| e.to_string())?)
            .cooldown(Duration::from_secs(args.unknown_kid_cooldown_secs))
            .build()
            .map_err(|e| format!("--txn-trust {pair}: {e}"))?;
        txn_sources.push((tts.to_owned(), source));
    }
    Ok(Sources {
        sources,
        wit_sources,
        svid_sources,
        txn_sources,
    })
}
