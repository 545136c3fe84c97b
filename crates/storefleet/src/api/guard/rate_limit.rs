//! Rate limits (GCRA, from `governor`): one bucket per token and one per client address, for reads
//! and, stricter, for writes. A request passes only if both of its buckets allow it; otherwise 429
//! with `Retry-After`. Tokens are keyed by a digest, never kept as they are.
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use utoipa::openapi::{self, RefOr};

use super::Guard;
use crate::api::problem::Problem;
use crate::api::{auth, session};

/// `count` requests per `per`, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per: Duration,
    pub count: u32,
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let period = self.per / self.count.max(1);
        Quota::with_period(period.max(Duration::from_nanos(1)))
            .expect("the period is not zero")
            .allow_burst(NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN))
    }
}

pub type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

pub fn keyed<K>(rate: Rate) -> Keyed<K>
where
    K: std::hash::Hash + Eq + Clone,
{
    RateLimiter::dashmap(rate.quota())
}

/// How long until a refused key may try again.
pub fn wait_time<K>(limiter: &Keyed<K>, key: &K) -> Result<(), Duration>
where
    K: std::hash::Hash + Eq + Clone,
{
    limiter
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// Reads and writes are limited separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Read,
    Write,
}

impl Class {
    pub fn of(method: &Method) -> Self {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Class::Read
        } else {
            Class::Write
        }
    }
}

struct Buckets {
    by_token: Keyed<[u8; 32]>,
    by_address: Keyed<IpAddr>,
}

impl Buckets {
    fn new(rate: Rate) -> Self {
        Self {
            by_token: keyed(rate),
            by_address: keyed(rate),
        }
    }

    fn check(&self, address: Option<IpAddr>, token: Option<&[u8; 32]>) -> Result<(), Duration> {
        if let Some(address) = address {
            wait_time(&self.by_address, &address)?;
        }
        if let Some(token) = token {
            wait_time(&self.by_token, token)?;
        }
        Ok(())
    }

    fn forget_idle(&self) {
        self.by_token.retain_recent();
        self.by_token.shrink_to_fit();
        self.by_address.retain_recent();
        self.by_address.shrink_to_fit();
    }
}

pub struct RateLimits {
    reads: Option<Buckets>,
    writes: Option<Buckets>,
    requests: AtomicU64,
}

/// Buckets that are full again are dropped every this many requests: memory stays bounded by the
/// clients seen recently, with no timer task.
const SWEEP_EVERY: u64 = 4096;

impl RateLimits {
    pub fn new(reads: Option<Rate>, writes: Option<Rate>) -> Self {
        Self {
            reads: reads.map(Buckets::new),
            writes: writes.map(Buckets::new),
            requests: AtomicU64::new(0),
        }
    }

    pub fn check(
        &self,
        class: Class,
        address: Option<IpAddr>,
        token: Option<&[u8; 32]>,
    ) -> Result<(), Duration> {
        if self.requests.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for buckets in [&self.reads, &self.writes].into_iter().flatten() {
                buckets.forget_idle();
            }
        }
        let buckets = match class {
            Class::Read => &self.reads,
            Class::Write => &self.writes,
        };
        match buckets {
            Some(buckets) => buckets.check(address, token),
            None => Ok(()),
        }
    }
}

const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Probes and Prometheus must never be refused: GET and HEAD of those paths, and nothing else (any
/// other method there is a request like any other).
fn is_exempt(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD) && PROBES.contains(&path)
}

/// The client's address: the TCP peer, or (with `--trust-forwarded-for`) the last `X-Forwarded-For`
/// hop, which the proxy in front appended. IPv6 clients are keyed by their /64, which one client
/// usually holds whole.
pub fn client_address(req: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| {
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .next_back()?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse::<IpAddr>()
                .ok()
        })
        .flatten();
    let address = forwarded.or_else(|| {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    })?;
    Some(match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    })
}

/// A digest of the credential the request carries (bearer token, else session cookie), if any. The
/// token is read exactly as authentication reads it, so `Bearer  x`, `bearer x ` and `Bearer\tx`
/// share one bucket.
pub fn credential_digest(req: &Request, https: bool) -> Option<[u8; 32]> {
    let (kind, secret) = match auth::bearer(req) {
        Some(token) => ("bearer", token),
        None => match session::cookie_value(req.headers(), session::cookie_name(https)) {
            Ok(Some(id)) => ("session", id),
            Ok(None) => return None,
            // Two cookies: one bucket for all such requests is fine, they are all refused.
            Err(session::TwoCookies) => ("session", ""),
        },
    };
    let mut digest = Sha256::new();
    digest.update(kind.as_bytes());
    digest.update([0]);
    digest.update(secret.as_bytes());
    Some(digest.finalize().into())
}

/// Middleware: the failed sign-in limit first (before any credential is checked), then the rate
/// limits; 401 answers to requests that carried credentials count as failed sign-ins.
pub async fn limit(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if is_exempt(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let address = client_address(&req, guard.settings.trust_forwarded_for);
    let token = credential_digest(&req, guard.settings.https);
    let signs_in =
        token.is_some() || (req.method() == Method::POST && req.uri().path() == "/session");
    if signs_in
        && let Some(address) = address
        && let Some(wait) = guard.auth_failures.blocked_for(address)
    {
        return too_many_requests(
            wait,
            "too many refused sign-ins from this address; wait before trying again",
        );
    }
    if let Err(wait) = guard
        .limits
        .check(Class::of(req.method()), address, token.as_ref())
    {
        return too_many_requests(wait, "too many requests from this client; slow down");
    }
    let response = next.run(req).await;
    if response
        .extensions()
        .get::<super::auth_failures::RefusedCredentials>()
        .is_some()
        && let Some(address) = address
    {
        guard.auth_failures.record(address);
    }
    response
}

/// 429 problem with `Retry-After` in whole seconds, at least 1.
pub fn too_many_requests(wait: Duration, detail: &str) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = Problem::too_many_requests(detail).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// OpenAPI: every limited operation may answer 429 (the probes and `/metrics` never do).
pub struct TooManyRequestsResponses;

impl utoipa::Modify for TooManyRequestsResponses {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let retry_after = openapi::HeaderBuilder::new()
            .schema(
                openapi::ObjectBuilder::new()
                    .schema_type(openapi::schema::Type::Integer)
                    .minimum(Some(1)),
            )
            .description(Some("Seconds to wait before trying again"))
            .build();
        let response = openapi::ResponseBuilder::new()
            .description("Rate limited (or too many refused sign-ins from this address)")
            .header("Retry-After", retry_after)
            .content(
                "application/problem+json",
                openapi::ContentBuilder::new()
                    .schema(Some(openapi::Ref::from_schema_name("ProblemBody")))
                    .build(),
            )
            .build();
        // The probes' only operations are GETs, which are exempt.
        crate::api::openapi::for_each_operation(doc, |path, operation| {
            if !PROBES.contains(&path) {
                operation
                    .responses
                    .responses
                    .insert("429".into(), RefOr::T(response.clone()));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], peer: &str) -> Request {
        let mut builder = axum::http::Request::builder();
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut req = builder.body(axum::body::Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    #[test]
    fn writes_are_refused_beyond_the_burst_and_per_key() {
        let limits = RateLimits::new(
            None,
            Some(Rate {
                per: Duration::from_secs(60),
                count: 1,
                burst: 2,
            }),
        );
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let token = [7u8; 32];
        assert!(limits.check(Class::Write, Some(a), Some(&token)).is_ok());
        assert!(limits.check(Class::Write, Some(a), Some(&token)).is_ok());
        let wait = limits
            .check(Class::Write, Some(a), Some(&token))
            .unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        // Same token elsewhere: the token's bucket is empty. Same address, other token: so is the address's.
        assert!(limits.check(Class::Write, Some(b), Some(&token)).is_err());
        assert!(limits.check(Class::Write, Some(a), Some(&[8; 32])).is_err());
        assert!(limits.check(Class::Write, Some(b), Some(&[8; 32])).is_ok());
        // Reads are not limited here at all.
        assert!(limits.check(Class::Read, Some(a), Some(&token)).is_ok());
    }

    #[test]
    fn client_addresses() {
        let req = request(&[("x-forwarded-for", "1.2.3.4, 5.6.7.8")], "127.0.0.1:5000");
        assert_eq!(
            client_address(&req, false),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(client_address(&req, true), Some("5.6.7.8".parse().unwrap()));
        let junk = request(&[("x-forwarded-for", "not an address")], "127.0.0.1:5000");
        assert_eq!(
            client_address(&junk, true),
            Some("127.0.0.1".parse().unwrap())
        );
        let v6 = request(&[], "[2001:db8:1:2:3:4:5:6]:443");
        assert_eq!(
            client_address(&v6, false),
            Some("2001:db8:1:2::".parse().unwrap())
        );
    }

    #[test]
    fn credentials_are_digested_and_told_apart() {
        let bearer = request(&[("authorization", "Bearer abc")], "127.0.0.1:1");
        let cookie = request(&[("cookie", "storefleet_session=abc")], "127.0.0.1:1");
        let none = request(&[], "127.0.0.1:1");
        let digest = credential_digest(&bearer, false).unwrap();
        assert_ne!(Some(digest), credential_digest(&cookie, false));
        assert!(!digest.windows(3).any(|w| w == b"abc"));
        assert_eq!(credential_digest(&none, false), None);
    }

    #[test]
    fn spellings_of_one_token_share_a_bucket() {
        let digest = |value: &str| {
            credential_digest(&request(&[("authorization", value)], "127.0.0.1:1"), false)
        };
        let plain = digest("Bearer abc");
        assert!(plain.is_some());
        for variant in [
            "bearer abc",
            "Bearer  abc",
            "Bearer abc  ",
            "BEARER abc",
            " Bearer abc",
        ] {
            assert_eq!(digest(variant), plain, "{variant:?}");
        }
        assert_ne!(digest("Bearer abd"), plain);
    }

    #[test]
    fn only_get_and_head_of_the_probes_are_exempt() {
        assert!(is_exempt(&Method::GET, "/healthz"));
        assert!(is_exempt(&Method::HEAD, "/metrics"));
        assert!(!is_exempt(&Method::POST, "/healthz"));
        assert!(!is_exempt(&Method::DELETE, "/readyz"));
        assert!(!is_exempt(&Method::GET, "/stores"));
    }

    #[tokio::test]
    async fn retry_after_is_whole_seconds_at_least_one() {
        for (wait, expected) in [
            (Duration::from_millis(10), "1"),
            (Duration::from_millis(2500), "3"),
        ] {
            let r = too_many_requests(wait, "slow down");
            assert_eq!(r.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(r.headers()[header::RETRY_AFTER], expected);
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
        }
    }
}
