//! Where a request goes and which token it gets: the [`Destination`], the
//! origin map (found by a hash of scheme, host and port, without
//! allocating), the per-request options ([`TargetAudience`],
//! [`BindRequest`]), the resolver, and a per-thread memo of each
//! destination's plan.

use std::collections::HashMap;
use std::sync::Arc;

use http::Extensions;
use svcauth_core::__private::PerThread;

use crate::error::{ConfigError, SignError};

/// A request extension naming the audience of this one request, ahead of
/// the signer's destination map.
///
/// The audience must still belong to the destination: its origin must be
/// mapped to it ([`SignerBuilder::audience`](crate::SignerBuilder::audience), or the resolver), or allowed
/// to receive it ([`SignerBuilder::allow_audience_at`](crate::SignerBuilder::allow_audience_at)). Otherwise the
/// request fails with [`SignError::AudienceNotAllowed`] and nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAudience(pub String);

/// A request extension: bind (or with `false`, do not bind) this request's
/// token to the request, whatever the destination's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindRequest(pub bool);

/// The destination of a request, as the signer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The host, without brackets for IPv6.
    pub host: &'a str,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// The path (for binding, and for a resolver that routes by path).
    pub path: &'a str,
    /// The query as sent, without the `?` (for binding).
    pub query: Option<&'a str>,
}

impl Destination<'_> {
    /// `scheme://host:port`, for messages.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}:{}",
            self.scheme.to_ascii_lowercase(),
            self.host.to_ascii_lowercase(),
            self.port
        )
    }

    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.to_owned()
        };
        format!("{host}:{}", self.port)
    }

    pub(crate) fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// What to do for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Send it without a token.
    Skip,
    /// Attach a token for `audience`, bound to the request or not.
    Token { audience: Arc<str>, bind: bool },
}

#[derive(Debug, Clone)]
struct Route {
    scheme: String,
    host: String,
    port: u16,
    audience: Arc<str>,
    bind: bool,
    /// Further audiences this origin may receive when a request names them
    /// ([`TargetAudience`]); never chosen by default.
    also: Vec<Arc<str>>,
}

impl Route {
    fn matches(&self, d: &Destination<'_>) -> bool {
        self.port == d.port
            && self.scheme.eq_ignore_ascii_case(d.scheme)
            && self.host.eq_ignore_ascii_case(d.host)
    }
}

/// Destination routes, found by a hash of (scheme, host, port) computed
/// without allocating: this lookup runs on every request.
#[derive(Debug, Default)]
struct Routes {
    hasher: foldhash::fast::FixedState,
    buckets: HashMap<u64, Vec<Route>, std::hash::BuildHasherDefault<IdentityHasher>>,
}

impl Routes {
    fn hash(&self, scheme: &str, host: &str, port: u16) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.hasher.build_hasher();
        for part in [scheme, host] {
            for chunk in part.as_bytes().chunks(8) {
                let mut word = [0u8; 8];
                for (w, b) in word.iter_mut().zip(chunk) {
                    *w = b.to_ascii_lowercase();
                }
                h.write_u64(u64::from_le_bytes(word));
            }
            h.write_u8(0xff);
        }
        h.write_u16(port);
        h.finish()
    }

    fn insert(&mut self, route: Route) {
        let key = self.hash(&route.scheme, &route.host, route.port);
        let bucket = self.buckets.entry(key).or_default();
        bucket.retain(|r| {
            !(r.port == route.port && r.scheme == route.scheme && r.host == route.host)
        });
        bucket.push(route);
    }

    fn get_mut(&mut self, scheme: &str, host: &str, port: u16) -> Option<&mut Route> {
        let key = self.hash(scheme, host, port);
        self.buckets
            .get_mut(&key)?
            .iter_mut()
            .find(|r| r.port == port && r.scheme == scheme && r.host == host)
    }

    fn get(&self, d: &Destination<'_>) -> Option<&Route> {
        self.buckets
            .get(&self.hash(d.scheme, d.host, d.port))?
            .iter()
            .find(|r| r.matches(d))
    }

    fn origins(&self) -> Vec<String> {
        self.buckets
            .values()
            .flatten()
            .map(|r| format!("{}://{}:{}", r.scheme, r.host, r.port))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// The keys of [`Routes`] are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type Resolver = Arc<dyn Fn(&Destination<'_>) -> Option<String> + Send + Sync>;

/// The routing half of a [`crate::Signer`]: the origin map, the resolver,
/// and what to do with requests neither names.
pub(crate) struct Router {
    /// Tells this router's per-thread memos apart from other signers'.
    id: u64,
    routes: Routes,
    resolver: Option<Resolver>,
    refuse_without_audience: bool,
    allow_insecure_http: bool,
}

impl Router {
    /// The router for the builder's origins: `routes` (origin, audience,
    /// bound) are defaults; `allowed` (origin, audience) may only be named.
    pub(crate) fn new(
        routes: Vec<(String, String, bool)>,
        allowed: Vec<(String, String)>,
        resolver: Option<Resolver>,
        refuse_without_audience: bool,
        allow_insecure_http: bool,
    ) -> Result<Self, ConfigError> {
        let mut map = Routes::default();
        for (origin, audience, bind) in routes {
            let (scheme, host, port) = parse_origin(&origin)?;
            map.insert(Route {
                scheme,
                host,
                port,
                audience: audience.into(),
                bind,
                also: Vec::new(),
            });
        }
        for (origin, audience) in allowed {
            let (scheme, host, port) = parse_origin(&origin)?;
            let audience: Arc<str> = audience.into();
            match map.get_mut(&scheme, &host, port) {
                Some(route) => route.also.push(audience),
                // Allowed, but no default: requests that name no audience
                // go out as they would to an unmapped origin.
                None => map.insert(Route {
                    scheme,
                    host,
                    port,
                    audience: Arc::from(""),
                    bind: false,
                    also: vec![audience],
                }),
            }
        }
        Ok(Router {
            id: PerThread::<PlanMemo>::new_owner(),
            routes: map,
            resolver,
            refuse_without_audience,
            allow_insecure_http,
        })
    }

    /// The mapped origins, for `Debug`.
    pub(crate) fn origins(&self) -> Vec<String> {
        self.routes.origins()
    }

    /// [`plan`](Router::plan) for a request URI, memoised per thread by
    /// (scheme, authority): the answer depends on nothing else unless the
    /// request carries per-request options, which skip the memo, or the
    /// answer came from the resolver, which may look at the path. Errors
    /// are never memoised.
    pub(crate) fn plan_uri<'u>(
        &self,
        uri: &'u http::Uri,
        extensions: &Extensions,
        destination: impl Fn(&'u http::Uri) -> Result<Destination<'u>, SignError>,
    ) -> Result<Plan, SignError> {
        let per_request = extensions.get::<TargetAudience>().is_some()
            || extensions.get::<BindRequest>().is_some();
        let (Some(scheme), Some(authority), false) =
            (uri.scheme_str(), uri.authority(), per_request)
        else {
            return self.plan(&destination(uri)?, Some(extensions));
        };
        let authority = authority.as_str();
        let id = self.id;
        let memo = PLANS.with(|p| {
            let p = p.borrow();
            let memo = p.get(id, authority)?;
            (&*memo.scheme == scheme).then(|| memo.plan.clone())
        });
        if let Some(plan) = memo {
            return Ok(plan);
        }
        let destination = destination(uri)?;
        let plan = self.plan(&destination, Some(extensions))?;
        if self.resolver.is_some() && self.routes.get(&destination).is_none() {
            return Ok(plan);
        }
        // This thread's own copy of the audience, so its reference count is
        // not shared with other threads.
        let copy = match &plan {
            Plan::Skip => Plan::Skip,
            Plan::Token { audience, bind } => Plan::Token {
                audience: Arc::from(&**audience),
                bind: *bind,
            },
        };
        let memo = PlanMemo {
            scheme: scheme.into(),
            plan: copy,
        };
        PLANS.with(|p| p.borrow_mut().insert(id, authority, memo, 64, 16));
        Ok(plan)
    }

    /// Decides what a request to `destination` gets.
    pub(crate) fn plan(
        &self,
        destination: &Destination<'_>,
        extensions: Option<&Extensions>,
    ) -> Result<Plan, SignError> {
        let inner = self;
        let explicit = extensions.and_then(|e| e.get::<TargetAudience>());
        let bind_override = extensions.and_then(|e| e.get::<BindRequest>()).map(|b| b.0);
        let mapped = inner.routes.get(destination);
        let route: Option<(Arc<str>, bool)> = match (explicit, mapped) {
            (Some(TargetAudience(audience)), Some(route))
                if *route.audience == **audience
                    || route.also.iter().any(|a| **a == **audience) =>
            {
                let bind = *route.audience == **audience && route.bind;
                Some((audience.as_str().into(), bind))
            }
            (Some(TargetAudience(audience)), None)
                if inner
                    .resolver
                    .as_ref()
                    .and_then(|r| r(destination))
                    .is_some_and(|a| a == *audience) =>
            {
                Some((audience.as_str().into(), false))
            }
            (Some(TargetAudience(audience)), _) => {
                return Err(SignError::AudienceNotAllowed {
                    audience: audience.clone(),
                    origin: destination.origin(),
                });
            }
            (None, Some(route)) if !route.audience.is_empty() => {
                Some((route.audience.clone(), route.bind))
            }
            (None, Some(_)) => None,
            (None, None) => inner
                .resolver
                .as_ref()
                .and_then(|r| r(destination))
                .map(|a| (a.into(), false)),
        };
        let Some((audience, bind)) = route else {
            if inner.refuse_without_audience {
                return Err(SignError::NoAudience(destination.origin()));
            }
            tracing::debug!(origin = %destination.origin(), "no audience for destination; sending without a token");
            return Ok(Plan::Skip);
        };
        let plain = !destination.scheme.eq_ignore_ascii_case("https");
        if plain && !destination.is_loopback() && !inner.allow_insecure_http {
            if inner.refuse_without_audience {
                return Err(SignError::InsecureDestination(destination.origin()));
            }
            tracing::warn!(origin = %destination.origin(), "plain http to a non-loopback host; sending without a token");
            return Ok(Plan::Skip);
        }
        Ok(Plan::Token {
            audience,
            bind: bind_override.unwrap_or(bind),
        })
    }
}

/// A thread's memo of one destination's plan, by authority.
struct PlanMemo {
    scheme: Box<str>,
    plan: Plan,
}

thread_local! {
    static PLANS: std::cell::RefCell<PerThread<PlanMemo>> = const { std::cell::RefCell::new(PerThread::new()) };
}

/// `scheme://host[:port]` into lower-case scheme and host and an explicit port.
pub(crate) fn parse_origin(origin: &str) -> Result<(String, String, u16), ConfigError> {
    let url = url::Url::parse(origin).map_err(|_| ConfigError::Origin(origin.to_owned()))?;
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(ConfigError::Origin(origin.to_owned()));
    };
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(ConfigError::Origin(origin.to_owned()));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Ok((url.scheme().to_owned(), host, port))
}

/// The destination of an `http::Request`'s absolute URI.
pub(crate) fn destination(uri: &http::Uri) -> Result<Destination<'_>, SignError> {
    let scheme = uri.scheme_str().ok_or(SignError::RelativeUrl)?;
    let authority = uri.authority().ok_or(SignError::RelativeUrl)?.as_str();
    // One pass over the authority (`Uri::host` and `Uri::port_u16` would
    // each parse it again): drop user info, then split host and port.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (
            host,
            Some(port.parse::<u16>().map_err(|_| SignError::RelativeUrl)?),
        ),
        _ => (host_port, None),
    };
    let port = port.unwrap_or(if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    });
    Ok(Destination {
        scheme,
        host: host.trim_start_matches('[').trim_end_matches(']'),
        port,
        path: uri.path(),
        query: uri.query(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_reads_host_and_port_in_every_form() {
        let d = |u: &str| {
            let uri: http::Uri = u.parse().unwrap();
            let d = destination(&uri).unwrap();
            (
                d.scheme.to_owned(),
                d.host.to_owned(),
                d.port,
                d.path.to_owned(),
            )
        };
        assert_eq!(
            d("https://b.internal/x"),
            ("https".into(), "b.internal".into(), 443, "/x".into())
        );
        assert_eq!(
            d("http://b.internal:8080/"),
            ("http".into(), "b.internal".into(), 8080, "/".into())
        );
        assert_eq!(
            d("http://[::1]:9/y"),
            ("http".into(), "::1".into(), 9, "/y".into())
        );
        assert_eq!(
            d("https://[::1]/y"),
            ("https".into(), "::1".into(), 443, "/y".into())
        );
        assert_eq!(
            d("http://u:p@h:81/"),
            ("http".into(), "h".into(), 81, "/".into())
        );
        assert!(destination(&"/relative".parse().unwrap()).is_err());
    }
}
