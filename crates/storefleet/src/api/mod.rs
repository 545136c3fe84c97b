//! The REST API (axum): router, shared state, and one file per group of routes.
pub mod audit;
pub mod auth;
pub mod backup_policy;
pub mod backups;
pub mod credentials;
pub mod dashboard;
pub mod domains;
pub mod events;
pub mod guard;
pub mod health;
pub mod live;
pub mod me;
pub mod methods;
pub mod openapi;
pub mod origin;
pub mod pool;
pub mod problem;
pub mod restores;
pub mod rollouts;
pub mod session;
pub mod storefront;
pub mod stores;
pub mod streams;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{delete, get, post, put};
use kube::Client;
use kube::runtime::reflector::Store as StoreCache;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_swagger_ui::SwaggerUi;

use crate::crd::Store;
use crate::dependencies::Dependencies;
use crate::metrics::{self, Metrics};
use crate::storage::{AuditLog, Database, Users};
use crate::stores::StoreService;
use crate::telemetry::{self, REQUEST_ID_HEADER, UuidRequestId};
use problem::Problem;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub stores: Arc<StoreService>,
    pub audit: AuditLog,
    pub db: Database,
    pub client: Client,
    /// Users and their tokens: authentication and the admin API.
    pub users: Users,
    /// Dashboard sign-in sessions (cookie -> identity).
    pub sessions: Arc<session::Sessions>,
    pub wait_limit: Duration,
    pub metrics: Arc<Metrics>,
    /// The watch cache of Stores (metrics; `StoreService` reads it too, with read-your-writes).
    pub cache: StoreCache<Store>,
    /// Rate limits, timeouts, CORS, security headers (`guard/`).
    pub guard: Arc<guard::Guard>,
    /// Open event streams: caps, lifetime, revocation.
    pub streams: Arc<streams::Streams>,
    /// The CRD, the watch and the database as this process last saw them (`/readyz`, 503s).
    pub deps: Arc<Dependencies>,
    /// Storefront checks (`GET /stores/{id}/health`).
    pub storefronts: Arc<crate::storefront::Storefronts>,
    /// A store's own domains (`/stores/{id}/domains`).
    pub domains: Arc<crate::domains::DomainService>,
    /// Backups (`/stores/{id}/backups`).
    pub backups: Arc<crate::backups::service::BackupService>,
    /// Restores (`/stores/{id}/restore`, `/stores/{id}/restores`).
    pub restores: Arc<crate::backups::restores::service::RestoreService>,
    /// Schedules and retention (`/stores/{id}/backup-schedule`, `/deleted-stores`).
    pub backup_policy: Arc<crate::backups::settings::BackupPolicy>,
}

pub fn router(state: AppState) -> Router {
    // Routes that need Stores: while the CRD is missing they answer 503 naming the fix.
    let stores = Router::new()
        .route(
            "/stores",
            get(stores::list_stores).post(stores::create_store),
        )
        .route(
            "/stores/{store_id}",
            get(stores::get_store)
                .patch(stores::update_store)
                .delete(stores::delete_store),
        )
        .route("/stores/{store_id}/events", get(events::store_events))
        .route(
            "/stores/{store_id}/backups",
            get(backups::list_backups).post(backups::create_backup),
        )
        .route(
            "/stores/{store_id}/backups/{backup_id}",
            get(backups::get_backup).delete(backups::delete_backup),
        )
        .route(
            "/stores/{store_id}/backup-schedule",
            get(backup_policy::get_schedule).put(backup_policy::put_schedule),
        )
        .route("/deleted-stores", get(backup_policy::deleted_stores))
        .route("/stores/{store_id}/restore", post(restores::restore_store))
        .route("/stores/{store_id}/restores", get(restores::list_restores))
        .route("/stores/{store_id}/credentials", get(credentials::reveal))
        .route(
            "/stores/{store_id}/health",
            get(storefront::storefront_health),
        )
        .route("/stores/{store_id}/domains", get(domains::list_domains))
        .route(
            "/stores/{store_id}/domains/{domain}",
            put(domains::put_domain).delete(domains::delete_domain),
        )
        .route("/events", get(live::all_events))
        .route("/pool", get(pool::get_pool))
        .route(
            "/rollouts",
            get(rollouts::list_rollouts).post(rollouts::create_rollout),
        )
        .route("/rollouts/{rollout_id}", get(rollouts::get_rollout))
        .route(
            "/rollouts/{rollout_id}/pause",
            post(rollouts::pause_rollout),
        )
        .route(
            "/rollouts/{rollout_id}/resume",
            post(rollouts::resume_rollout),
        )
        .route(
            "/rollouts/{rollout_id}/abort",
            post(rollouts::abort_rollout),
        )
        .route("/me", get(me::me))
        .route_layer(middleware::from_fn_with_state(
            state.deps.clone(),
            health::require_crd,
        ));
    let protected = Router::new()
        .merge(stores)
        .route("/audit", get(audit::list_audit))
        .route("/users", get(users::list_users).post(users::create_user))
        .route(
            "/users/{user_id}",
            get(users::get_user).patch(users::update_user),
        )
        .route("/users/{user_id}/tokens", post(users::create_token))
        .route(
            "/users/{user_id}/tokens/{token_id}",
            delete(users::revoke_token),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let public = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/session", post(session::sign_in).delete(session::sign_out))
        .route("/", get(dashboard::index))
        .route("/assets/{*path}", get(dashboard::asset));
    let routes = Router::new()
        .merge(protected)
        .merge(public)
        .merge(guard::headers::docs(Router::from(
            SwaggerUi::new("/docs").url("/openapi.json", openapi::api_doc()),
        )))
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(problem::refuse_oversized_body));
    guard::wrap(routes, &state.guard)
        // Outermost last: a sane incoming request id is kept, else one is made; it goes into the
        // request's span, every problem body and the response header. Metrics see the final status.
        .layer(middleware::from_fn(problem::add_request_id))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track_http,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::http_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, UuidRequestId))
        .layer(middleware::map_request(telemetry::drop_insane_request_id))
        // Before anything else: a method outside HTTP's standard set never reaches a log line, a
        // metric label or an allocation that lives past the request.
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            methods::refuse_unknown,
        ))
        .with_state(state)
}

/// The controller component's only routes: probes and metrics (`--component controller`).
pub fn probes_router(state: ProbeState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::controller_readyz))
        .route("/metrics", get(health::controller_metrics))
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track_http,
        ))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            methods::refuse_unknown,
        ))
        .with_state(state)
}

/// What the controller component's probe routes read.
/// The store controller's cache, replaced each time this replica starts leading.
pub type ControllerCache = std::sync::Arc<std::sync::RwLock<StoreCache<Store>>>;

#[derive(Clone)]
pub struct ProbeState {
    pub metrics: Arc<Metrics>,
    pub deps: Arc<Dependencies>,
    /// The controller's own cache of Stores (metrics by phase), of its current term (empty on a
    /// standby replica: only the leader runs the controller).
    pub cache: ControllerCache,
    pub instance: String,
}

/// `Query` whose rejection is a problem+json answer.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct ApiQuery<T>(pub T);

/// `Path` whose rejection is a problem+json answer.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct ApiPath<T>(pub T);
