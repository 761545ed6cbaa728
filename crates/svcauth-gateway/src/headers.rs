//! The identity headers a client could forge, and how a header is matched
//! against them (any case, `_` for `-`, `*` for a prefix).

/// Headers a client could use to claim an identity that internal services
/// might believe. They are removed from every request before it is
/// forwarded; [`crate::GatewayBuilder::strip_header`] adds more.
///
/// Names are compared case-insensitively with `_` read as `-`, because CGI,
/// WSGI, PHP and Rack turn `X_Forwarded_User` into the same variable as
/// `X-Forwarded-User`. A name ending in `*` is a prefix: every header that
/// starts with it goes.
pub const IDENTITY_HEADERS: &[&str] = &[
    // A Transaction Token comes only from this trust domain's Transaction
    // Token Service, never from outside (one from a client is a replay).
    "txn-token",
    // oauth2-proxy, and proxies that copy its names.
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-auth-request-*",
    // Web servers, API gateways, Apache and friends.
    "x-authenticated-user",
    "x-authenticated-userid",
    "x-authenticated-groups",
    "x-authenticated-scope",
    "x-remote-user",
    "x-remote-group",
    "remote-user",
    "x-user",
    "x-user-id",
    "x-user-email",
    "x-userinfo",
    "x-client-id",
    "x-consumer-*",
    "x-credential-identifier",
    "x-jwt-assertion",
    "x-jwt-payload",
    "x-id-token",
    "x-access-token",
    "x-introspection",
    "x-webauth-user",
    "x-ssl-client-*",
    // AWS ALB, Google IAP, Cloudflare Access, Azure App Service / Easy Auth.
    "x-amzn-oidc-*",
    "x-goog-authenticated-user-*",
    "x-goog-iap-jwt-assertion",
    "cf-access-*",
    "cf-access-jwt-assertion",
    "x-ms-client-principal*",
    "x-ms-token-*",
    // Credentials for a proxy are never the upstream's business.
    "proxy-authorization",
];

/// Whether the header `name` is named by `pattern` (from
/// [`IDENTITY_HEADERS`] or [`crate::GatewayBuilder::strip_header`]): ASCII case
/// ignored, `_` read as `-`, a trailing `*` matching any rest.
pub(crate) fn header_matches(pattern: &str, name: &str) -> bool {
    let normal = |b: u8| match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    };
    let (pattern, prefix) = match pattern.strip_suffix('*') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    if prefix {
        n.len() >= p.len() && p.iter().zip(n).all(|(a, b)| normal(*a) == normal(*b))
    } else {
        n.len() == p.len() && p.iter().zip(n).all(|(a, b)| normal(*a) == normal(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_match_any_spelling() {
        let g = |name: &str| IDENTITY_HEADERS.iter().any(|p| header_matches(p, name));
        for forged in [
            "x-forwarded-user",
            "X_Forwarded_User",
            "X-FORWARDED_groups",
            "x-auth-request-preferred-username",
            "x-amzn-oidc-identity",
            "x-amzn-oidc-data",
            "x-goog-authenticated-user-email",
            "cf-access-authenticated-user-email",
            "x-ms-client-principal-name",
            "x_ms_client_principal",
            "proxy-authorization",
        ] {
            assert!(g(forged), "{forged}");
        }
        for fine in [
            "accept",
            "x-forwarded-proto",
            "x-request-id",
            "x-user-agent",
            "x-users",
        ] {
            assert!(!g(fine), "{fine}");
        }
    }
}
