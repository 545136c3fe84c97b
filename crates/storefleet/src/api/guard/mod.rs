//! What stands between the network and the handlers: rate limits, the failed sign-in limit, request
//! timeouts, CORS, security headers, and the HTTP server's own limits (header size, slowloris).
//! `docs/security.md` describes the behaviour and the defaults.
pub mod auth_failures;
pub mod cors;
pub mod head_size;
pub mod headers;
pub mod listener;
pub mod rate_limit;
pub mod timeout;

use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::middleware;
use clap::Args;

use auth_failures::AuthFailures;
use rate_limit::RateLimits;

/// `storefleet serve` flags of the guard (flattened into `ServeArgs`).
#[derive(Args, Debug, Clone)]
pub struct GuardArgs {
    /// Reads (GET/HEAD/OPTIONS) allowed per second, per token and per client address (0: no limit).
    #[arg(long, env = "STOREFLEET_RATE_LIMIT_READS", default_value_t = 50)]
    pub rate_limit_reads: u32,
    /// Reads allowed at once before the per-second rate applies.
    #[arg(long, env = "STOREFLEET_RATE_LIMIT_READS_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_reads_burst: u32,
    /// Writes (POST/PUT/PATCH/DELETE, sign-in included) allowed per second, per token and per client
    /// address (0: no limit).
    #[arg(long, env = "STOREFLEET_RATE_LIMIT_WRITES", default_value_t = 5)]
    pub rate_limit_writes: u32,
    /// Writes allowed at once before the per-second rate applies.
    #[arg(long, env = "STOREFLEET_RATE_LIMIT_WRITES_BURST", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_writes_burst: u32,
    /// Refused credentials (401) allowed per minute and client address; beyond that, requests that
    /// carry credentials get 429 before any check (0: no limit).
    #[arg(
        long,
        env = "STOREFLEET_AUTH_FAILURES_PER_MINUTE",
        default_value_t = 10
    )]
    pub auth_failures_per_minute: u32,
    /// Refused credentials allowed at once before the per-minute rate applies.
    #[arg(long, env = "STOREFLEET_AUTH_FAILURES_BURST", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failures_burst: u32,
    /// The client address is the last `X-Forwarded-For` hop (set this only behind a proxy that
    /// appends it, like the platform chart's ingress); otherwise the TCP peer.
    #[arg(long, env = "STOREFLEET_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
    /// Answer CORS requests from this origin (`https://admin.example.com`; repeat, or
    /// comma-separated). None: no CORS headers at all.
    #[arg(
        long = "cors-allow-origin",
        env = "STOREFLEET_CORS_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_allow_origins: Vec<String>,
    /// A request that takes longer is answered 503, or 408 if its body had not arrived (`0s`: no
    /// timeout). Event streams are exempt;
    /// `POST /stores?wait=true` gets `--wait-limit` more.
    #[arg(long, env = "STOREFLEET_REQUEST_TIMEOUT", default_value = "30s", value_parser = crate::cli::parse_duration)]
    pub request_timeout: Duration,
    /// Event streams (`/events`, `/stores/{id}/events`) open at once, in all.
    #[arg(long, env = "STOREFLEET_MAX_STREAMS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,
    /// Event streams one user may hold open at once (the dashboard needs one per open tab).
    #[arg(long, env = "STOREFLEET_MAX_STREAMS_PER_USER", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_user: u32,
    /// An event stream ends after this long (the browser's EventSource reconnects by itself).
    #[arg(long, env = "STOREFLEET_STREAM_MAX_LIFETIME", default_value = "1h", value_parser = crate::cli::parse_duration)]
    pub stream_max_lifetime: Duration,
}

/// Validated guard settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub reads: Option<rate_limit::Rate>,
    pub writes: Option<rate_limit::Rate>,
    pub auth_failures: Option<rate_limit::Rate>,
    pub trust_forwarded_for: bool,
    pub cors_allow_origins: Vec<HeaderValue>,
    pub request_timeout: Option<Duration>,
    /// How long `POST /stores?wait=true` may wait on top of the request timeout.
    pub wait_limit: Duration,
    /// HSTS is sent only when the control plane is served over https.
    pub https: bool,
    /// What cookie-authenticated writes must come from.
    pub origin: crate::api::session::OriginCheck,
    pub streams: crate::api::streams::Limits,
}

impl Settings {
    pub fn from_args(
        args: GuardArgs,
        wait_limit: Duration,
        https: bool,
        public_origin: Option<crate::api::origin::PublicOrigin>,
    ) -> anyhow::Result<Self> {
        let rate = |per_second: u32, burst: u32| {
            (per_second > 0).then(|| rate_limit::Rate {
                per: Duration::from_secs(1),
                count: per_second,
                burst,
            })
        };
        let cors_allow_origins = args
            .cors_allow_origins
            .iter()
            .map(|origin| cors::parse_origin(origin))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            reads: rate(args.rate_limit_reads, args.rate_limit_reads_burst),
            writes: rate(args.rate_limit_writes, args.rate_limit_writes_burst),
            auth_failures: (args.auth_failures_per_minute > 0).then(|| rate_limit::Rate {
                per: Duration::from_secs(60),
                count: args.auth_failures_per_minute,
                burst: args.auth_failures_burst,
            }),
            trust_forwarded_for: args.trust_forwarded_for,
            cors_allow_origins,
            request_timeout: (!args.request_timeout.is_zero()).then_some(args.request_timeout),
            wait_limit,
            https,
            origin: crate::api::session::OriginCheck {
                public: public_origin,
                https,
            },
            streams: crate::api::streams::Limits {
                total: args.max_streams,
                per_user: args.max_streams_per_user,
                lifetime: args.stream_max_lifetime,
            },
        })
    }
}

/// The guard's state, shared by every request.
pub struct Guard {
    pub settings: Settings,
    pub limits: RateLimits,
    pub auth_failures: AuthFailures,
}

impl Guard {
    pub fn new(settings: Settings) -> Self {
        Self {
            limits: RateLimits::new(settings.reads, settings.writes),
            auth_failures: AuthFailures::new(settings.auth_failures),
            settings,
        }
    }
}

/// Wraps every route (and the fallbacks) in the guard's layers. Call it inside
/// `problem::add_request_id`, so that a 429 or a timeout carries the request id.
pub fn wrap<S>(router: Router<S>, guard: &std::sync::Arc<Guard>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Innermost first: the timeout around the handler; limits before it; CORS outside the limits so
    // a browser can read a 429; security headers on everything.
    let mut router = router
        .layer(middleware::from_fn_with_state(
            guard.clone(),
            timeout::limit_duration,
        ))
        .layer(middleware::from_fn_with_state(
            guard.clone(),
            rate_limit::limit,
        ))
        .layer(middleware::from_fn(head_size::limit_head));
    if let Some(cors) = cors::layer(&guard.settings.cors_allow_origins) {
        router = router.layer(cors);
    }
    headers::add(router, guard.settings.https)
}
