//! The OpenAPI document, generated from the handlers and types (`GET /openapi.json`, Swagger UI at
//! `/docs`); `docs/openapi.json` is a committed copy kept equal by a test.
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audit, credentials, events, health, live, me, problem, session, stores};

#[derive(OpenApi)]
#[openapi(
    info(title = "Storefleet API", description = "Online stores on demand, on Kubernetes. Errors are `application/problem+json`."),
    paths(
        stores::create_store, stores::list_stores, stores::get_store, stores::delete_store,
        events::store_events, audit::list_audit, health::healthz, health::readyz, health::metrics,
        credentials::reveal, live::all_events, me::me, session::sign_in, session::sign_out,
    ),
    components(schemas(problem::ProblemBody, crate::stores::StoreView, crate::stores::ConditionView,
        stores::CreateStoreRequest, stores::DeleteAccepted, crate::storage::AuditRecord, health::Health,
        credentials::Credentials, me::Me, me::Role, session::SignIn)),
    modifiers(&BearerAuth),
    tags((name = "stores"), (name = "audit"), (name = "session"), (name = "health"))
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
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
