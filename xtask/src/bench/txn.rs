//! Target 11: Transaction Tokens at cache-hit cost (`benches/benches/txn.rs`).

use super::report::Target;
use super::{Groups, time};

/// Target 11, read from the criterion group `txn/EdDSA`.
pub(super) fn targets(groups: &Groups) -> Vec<Target> {
    let hit = |f: &str| {
        groups
            .get("txn/EdDSA")
            .and_then(|g| g.get(f))
            .map(|f| f.median)
    };
    let (Some(only), Some(both), Some(header)) = (
        hit("service_token_only"),
        hit("service_and_txn_token"),
        hit("txn_header_not_verified"),
    ) else {
        return Vec::new();
    };
    vec![Target {
        what: "11. a request with a service token and a Txn-Token ÷ one with the service token only, both cache hits, through the verifying layer (at most 1.3x)".into(),
        measured: format!(
            "{:.2}x ({} vs {}: +{} the header itself, as a verifier that ignores it also pays; +{} verifying it from the cache, putting it in the extensions and making it current)",
            both / only,
            time(both),
            time(only),
            time(header - only),
            time(both - header)
        ),
        met: Some(both / only <= 1.3),
    }]
}
