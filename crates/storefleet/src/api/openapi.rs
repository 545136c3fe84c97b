//! The OpenAPI document, generated from the handlers and types (`GET /openapi.json`, Swagger UI at
//! `/docs`); `docs/openapi.json` is a committed copy kept equal by a test.
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::guard::rate_limit::TooManyRequestsResponses;
use super::{
    audit, backup_policy, backups, credentials, domains, events, health, live, me, pool, problem,
    restores, rollouts, session, storefront, stores, users,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Storefleet API", description = "Online stores on demand, on Kubernetes. Errors are `application/problem+json`."),
    paths(
        stores::create_store, stores::list_stores, stores::get_store, stores::update_store, stores::delete_store,
        events::store_events, audit::list_audit, health::healthz, health::readyz, health::metrics,
        credentials::reveal, storefront::storefront_health, live::all_events, me::me, session::sign_in, session::sign_out,
        users::create_user, users::list_users, users::get_user, users::update_user,
        users::create_token, users::revoke_token,
        rollouts::create_rollout, rollouts::list_rollouts, rollouts::get_rollout,
        rollouts::pause_rollout, rollouts::resume_rollout, rollouts::abort_rollout,
        domains::list_domains, domains::put_domain, domains::delete_domain,
        backups::create_backup, backups::list_backups, backups::get_backup, backups::delete_backup,
        restores::restore_store, restores::list_restores,
        backup_policy::get_schedule, backup_policy::put_schedule, backup_policy::deleted_stores,
        pool::get_pool,
    ),
    components(schemas(problem::ProblemBody, crate::stores::StoreView, crate::stores::ConditionView,
        stores::StorePage, stores::StoreListing, audit::AuditPage, audit::AuditListing,
        stores::CreateStoreRequest, stores::UpdateStoreRequest, stores::DeleteAccepted, crate::storage::AuditRecord, health::Health,
        credentials::Credentials, me::Me, me::Role, session::SignIn, users::CreateUserRequest,
        users::UpdateUserRequest, users::CreateTokenRequest, users::UserView, users::TokenView,
        users::NewUser, users::NewToken, crate::storefront::StorefrontHealth, crate::storefront::Part,
        crate::storefront::PartResult, crate::storefront::Failure,
        rollouts::CreateRolloutRequest, rollouts::RolloutView, rollouts::RolloutStoreView,
        domains::PutDomainRequest, crate::domains::DomainView, crate::domains::DomainState,
        crate::backups::service::BackupView, crate::backups::kind::BackupKind,
        crate::backups::schedule::Schedule, crate::backups::scheduler::ScheduleView,
        crate::backups::deleted::DeletedStore, backup_policy::ScheduleRequest,
        crate::backups::restores::service::RestoreView, restores::RestoreRequest,
        crate::pool::status::PoolKindView)),
    modifiers(&BearerAuth, &TooManyRequestsResponses, &EventStreams, &UnavailableResponses),
    tags((name = "stores"), (name = "audit"), (name = "session"), (name = "users"), (name = "rollouts"), (name = "domains"), (name = "backups"), (name = "pool"), (name = "health"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // The dashboard's session (`POST /session`); accepted wherever the bearer token is.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(super::session::COOKIE))),
        );
    }
}

// OpenAPI 3.1 tools (schemathesis among them) read the schema of a `text/event-stream` answer as
// the schema of each event.
/// One Server-Sent Event of a `text/event-stream` answer (keep-alive comments are not events).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
struct SseEvent {
    /// `store`, `deleted`, or `snapshot` (`GET /events` only).
    #[schema(example = "store")]
    event: String,
    /// JSON text: a store (`store`), every store (`snapshot`), or `{"store_id": ...}` (`deleted`).
    data: String,
}

/// Describes every `text/event-stream` answer as a stream of [`SseEvent`]s (the handlers say
/// `body = String`, which would claim each event is a bare string).
struct EventStreams;

impl Modify for EventStreams {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        use utoipa::{PartialSchema, ToSchema};
        for item in openapi.paths.paths.values_mut() {
            let Some(get) = item.get.as_mut() else {
                continue;
            };
            for response in get.responses.responses.values_mut() {
                if let RefOr::T(response) = response
                    && let Some(content) = response.content.get_mut("text/event-stream")
                {
                    content.schema = Some(RefOr::Ref(Ref::from_schema_name(SseEvent::name())));
                }
            }
        }
        openapi
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .insert(SseEvent::name().into_owned(), SseEvent::schema());
    }
}

/// Every operation that reads the cluster or the database may answer 503 when one of them is away (or
/// the Store CRD is missing): a cause on the platform's side, never a 500.
struct UnavailableResponses;

impl Modify for UnavailableResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let response = ResponseBuilder::new()
            .description("A dependency is unavailable: the Kubernetes API, the Store CRD (the detail names the command that installs it) or the database")
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ProblemBody")))
                    .build(),
            )
            .build();
        for_each_operation(openapi, |path, operation| {
            if !matches!(path, "/healthz" | "/metrics") {
                operation
                    .responses
                    .responses
                    .entry("503".into())
                    .or_insert_with(|| RefOr::T(response.clone()));
            }
        });
    }
}

/// Calls `f` with every operation of the document and its path.
pub fn for_each_operation(
    doc: &mut utoipa::openapi::OpenApi,
    mut f: impl FnMut(&str, &mut utoipa::openapi::path::Operation),
) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            f(path, operation);
        }
    }
}

pub fn api_doc() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // The crate version would make the committed copy churn on every release bump.
    doc.info.version = "v1".into();
    doc
}

/// Pretty JSON, exactly as committed in `docs/openapi.json`.
pub fn openapi_json() -> String {
    format!(
        "{}\n",
        api_doc()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_openapi_is_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == openapi_json(),
            "{path} is out of date; regenerate it with `cargo run -p storefleet -- openapi > docs/openapi.json`"
        );
    }

    #[test]
    fn documents_every_route() {
        let doc = api_doc();
        for path in [
            "/stores",
            "/stores/{store_id}",
            "/stores/{store_id}/events",
            "/audit",
            "/healthz",
            "/readyz",
            "/metrics",
            "/stores/{store_id}/credentials",
            "/events",
            "/me",
            "/session",
            "/users",
            "/users/{user_id}",
            "/users/{user_id}/tokens",
            "/users/{user_id}/tokens/{token_id}",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
