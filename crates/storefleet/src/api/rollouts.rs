//! `/rollouts` handlers (admins only): create a fleet rollout, read it, pause, resume or abort it.
//! Thin: a rollout is a `StoreRollout` object; the rollout controller (`crate::rollouts`) does the
//! work. Every change is audited.
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::stores::json_object;
use super::{ApiPath, AppState};
use crate::crd::{DEFAULT_INSTANCE, LABEL_INSTANCE};
use crate::rollouts::types::{StoreRollout, StoreRolloutSpec, Target};
use crate::storage::{Action, AuditEntry};
use crate::stores::Caller;

/// Body of `POST /rollouts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRolloutRequest {
    /// Names the target (lowercase letters, digits, `-` and `.`); stores record it.
    #[schema(example = "wp-6.8.3-2", max_length = 63)]
    pub target: String,
    /// Chart values laid over the platform's (never the store id, host or plan).
    #[schema(value_type = Object, example = json!({"wordpress": {"image": {"tag": "6.8.3-php8.3-apache"}}}))]
    pub values: serde_json::Value,
    /// Only stores with these labels.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// The canary store; default: the first store by id.
    #[serde(default)]
    pub canary: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, example = 2)]
    pub batch_size: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1, example = 1)]
    pub max_unavailable: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1, example = 300)]
    pub gate_timeout_seconds: Option<u32>,
}

/// A rollout and each store's step.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutView {
    #[schema(example = "rollout-3f2c9a1e")]
    pub rollout_id: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub values: serde_json::Value,
    /// Progressing, Paused, Completed or Aborted; absent until the controller has looked.
    pub phase: Option<String>,
    /// `upgraded/total`.
    pub progress: Option<String>,
    pub message: Option<String>,
    pub paused: bool,
    pub aborted: bool,
    pub batch_size: u32,
    pub max_unavailable: u32,
    pub stores: Vec<RolloutStoreView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutStoreView {
    pub store_id: String,
    /// Pending, BackingUp, Upgrading, Upgraded, RollingBack or RolledBack.
    pub step: String,
    pub previous_revision: Option<u32>,
    /// Its pre-upgrade backup's id (`GET /stores/{store_id}/backups/{backup_id}`), when the
    /// platform has a backup target.
    #[schema(example = "backup-20261201-221500-3fa2c1")]
    pub backup: Option<String>,
    pub message: Option<String>,
}

impl From<&StoreRollout> for RolloutView {
    fn from(r: &StoreRollout) -> Self {
        let st = r.status.clone().unwrap_or_default();
        Self {
            rollout_id: r.name_any(),
            target: r.spec.target.name.clone(),
            values: r.spec.target.values.clone(),
            phase: st.phase.map(|p| p.as_str().to_owned()),
            progress: st.progress,
            message: st.message,
            paused: r.spec.paused,
            aborted: r.spec.aborted,
            batch_size: r.spec.batch_size,
            max_unavailable: r.spec.max_unavailable,
            stores: st
                .stores
                .iter()
                .map(|p| RolloutStoreView {
                    store_id: p.store_id.clone(),
                    step: format!("{:?}", p.step),
                    previous_revision: p.previous_revision,
                    backup: p.backup.clone(),
                    message: p.message.clone(),
                })
                .collect(),
        }
    }
}

const NOT_ADMIN: &str = "Not an admin";

/// Start a fleet rollout (admins only).
#[utoipa::path(
    post, path = "/rollouts", tag = "rollouts",
    request_body(content = CreateRolloutRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the controller starts it", body = RolloutView),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = NOT_ADMIN, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_rollout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    admin_only(&state, &caller, "POST /rollouts").await?;
    let bytes = body.map_err(Problem::from)?;
    let req: CreateRolloutRequest = json_object(&headers, &bytes)?
        .ok_or_else(|| Problem::invalid("a body with `target` and `values` is required"))?;
    let spec = parse(req)?;
    let id = format!(
        "rollout-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut rollout = StoreRollout::new(&id, spec);
    rollout
        .labels_mut()
        .insert(LABEL_INSTANCE.into(), state.stores.instance().to_owned());
    let created = api(&state)
        .create(&PostParams::default(), &rollout)
        .await
        .map_err(kube_problem)?;
    audit(
        &state,
        &caller,
        "created",
        format!(
            "rollout {id}: target {} ({})",
            created.spec.target.name,
            crate::rollouts::controller::changed_values(&created.spec.target.values)
        ),
    )
    .await;
    Ok((StatusCode::CREATED, Json(RolloutView::from(&created))).into_response())
}

fn parse(req: CreateRolloutRequest) -> Result<StoreRolloutSpec, Problem> {
    let name_ok = !req.target.is_empty()
        && req.target.len() <= 63
        && req
            .target
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && req.target.starts_with(|c: char| c.is_ascii_alphanumeric())
        && req.target.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !name_ok {
        return Err(Problem::invalid(
            "`target`: 1 to 63 lowercase letters, digits, `-` or `.`, starting and ending with a letter or digit",
        ));
    }
    if !req.values.is_object() {
        return Err(Problem::invalid(
            "`values` must be an object of chart values",
        ));
    }
    if [
        req.batch_size,
        req.max_unavailable,
        req.gate_timeout_seconds,
    ]
    .contains(&Some(0))
    {
        return Err(Problem::invalid(
            "`batch_size`, `max_unavailable` and `gate_timeout_seconds` are at least 1",
        ));
    }
    if let Some((k, v)) = req
        .selector
        .iter()
        .find(|(k, v)| !is_label_key(k) || !(v.is_empty() || is_label_name(v)))
    {
        return Err(Problem::invalid(format!(
            "`selector`: `{k}: {v}` is not a Kubernetes label (name: 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit; an optional DNS prefix and `/`)"
        )));
    }
    if let Some(canary) = &req.canary {
        crate::domain::StoreId::parse(canary)
            .map_err(|_| Problem::invalid("`canary` must be a store id"))?;
    }
    Ok(StoreRolloutSpec {
        target: Target {
            name: req.target,
            values: req.values,
        },
        selector: req.selector,
        canary: req.canary,
        batch_size: req.batch_size.unwrap_or(1),
        max_unavailable: req.max_unavailable.unwrap_or(1),
        gate_timeout_seconds: req.gate_timeout_seconds.unwrap_or(300),
        paused: false,
        aborted: false,
    })
}

/// A label's name part, or a value that is not empty.
fn is_label_name(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `[prefix/]name`, the prefix a DNS subdomain.
fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        None => is_label_name(s),
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|part| {
                    !part.is_empty()
                        && part.len() <= 63
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !part.starts_with('-')
                        && !part.ends_with('-')
                })
                && is_label_name(name)
        }
    }
}

/// Every rollout of this instance, oldest first (admins only).
#[utoipa::path(
    get, path = "/rollouts", tag = "rollouts",
    responses(
        (status = 200, description = "Rollouts", body = [RolloutView]),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = NOT_ADMIN, body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_rollouts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<RolloutView>>, Problem> {
    admin_only(&state, &caller, "GET /rollouts").await?;
    let mut list: Vec<StoreRollout> = api(&state)
        .list(&ListParams::default())
        .await
        .map_err(kube_problem)?
        .items
        .into_iter()
        .filter(|r| ours(&state, r))
        .collect();
    list.sort_by_key(|r| r.metadata.creation_timestamp.as_ref().map(|t| t.0));
    Ok(Json(list.iter().map(RolloutView::from).collect()))
}

/// One rollout (admins only).
#[utoipa::path(
    get, path = "/rollouts/{rollout_id}", tag = "rollouts",
    params(("rollout_id" = String, Path)),
    responses(
        (status = 200, description = "The rollout", body = RolloutView),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = NOT_ADMIN, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such rollout", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_rollout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RolloutView>, Problem> {
    admin_only(&state, &caller, "GET /rollouts/{rollout_id}").await?;
    let rollout = find(&state, &id).await?;
    Ok(Json(RolloutView::from(&rollout)))
}

/// Pause: no further store is moved (stores moving now finish their gate).
#[utoipa::path(
    post, path = "/rollouts/{rollout_id}/pause", tag = "rollouts",
    params(("rollout_id" = String, Path)),
    responses(
        (status = 200, description = "Paused", body = RolloutView),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = NOT_ADMIN, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such rollout", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn pause_rollout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RolloutView>, Problem> {
    set_flag(
        &state,
        &caller,
        &id,
        "pause",
        serde_json::json!({"paused": true}),
    )
    .await
}

/// Resume a paused rollout (also one paused by a rolled-back store).
#[utoipa::path(
    post, path = "/rollouts/{rollout_id}/resume", tag = "rollouts",
    params(("rollout_id" = String, Path)),
    responses(
        (status = 200, description = "Resumed", body = RolloutView),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = NOT_ADMIN, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such rollout", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resume_rollout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RolloutView>, Problem> {
    set_flag(
        &state,
        &caller,
        &id,
        "resume",
        serde_json::json!({"paused": false}),
    )
    .await
}

/// Abort: no further store is moved, for good (stores already moved keep the target).
#[utoipa::path(
    post, path = "/rollouts/{rollout_id}/abort", tag = "rollouts",
    params(("rollout_id" = String, Path)),
    responses(
        (status = 200, description = "Aborting", body = RolloutView),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = NOT_ADMIN, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such rollout", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn abort_rollout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RolloutView>, Problem> {
    set_flag(
        &state,
        &caller,
        &id,
        "abort",
        serde_json::json!({"aborted": true}),
    )
    .await
}

async fn set_flag(
    state: &AppState,
    caller: &Caller,
    id: &str,
    verb: &str,
    spec: serde_json::Value,
) -> Result<Json<RolloutView>, Problem> {
    admin_only(
        state,
        caller,
        &format!("POST /rollouts/{{rollout_id}}/{verb}"),
    )
    .await?;
    find(state, id).await?;
    let patched = api(state)
        .patch(
            id,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": spec })),
        )
        .await
        .map_err(kube_problem)?;
    audit(state, caller, verb, format!("rollout {id}: {verb}")).await;
    Ok(Json(RolloutView::from(&patched)))
}

fn api(state: &AppState) -> Api<StoreRollout> {
    Api::all(state.client.clone())
}

fn ours(state: &AppState, r: &StoreRollout) -> bool {
    r.labels()
        .get(LABEL_INSTANCE)
        .map_or(DEFAULT_INSTANCE, String::as_str)
        == state.stores.instance()
}

async fn find(state: &AppState, id: &str) -> Result<StoreRollout, Problem> {
    let no_such = || Problem::not_found(format!("no rollout {id}"));
    // Only names the API server could hold: anything else is no rollout (not a 4xx from it).
    let name_like = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if id.is_empty() || id.len() > 63 || !name_like {
        return Err(no_such());
    }
    match api(state).get_opt(id).await.map_err(kube_problem)? {
        Some(r) if ours(state, &r) => Ok(r),
        _ => Err(no_such()),
    }
}

fn kube_problem(e: kube::Error) -> Problem {
    // The API server's own validation (the CRD's schema) refused the rollout: the caller's input.
    if let kube::Error::Api(status) = &e
        && status.code == 422
    {
        return Problem::invalid(status.message.clone());
    }
    tracing::warn!("rollouts: Kubernetes API: {e}");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "kubernetes-unavailable",
        "Kubernetes API unavailable",
        "the Kubernetes API did not answer as expected; try again",
    )
}

async fn audit(state: &AppState, caller: &Caller, outcome: &str, detail: String) {
    state
        .audit
        .record(AuditEntry {
            actor: caller.owner.to_string(),
            action: Action::Rollout,
            store_id: None,
            store_owner: None,
            outcome: outcome.into(),
            detail,
            remote_addr: caller.remote_addr.clone(),
        })
        .await;
}

async fn admin_only(state: &AppState, caller: &Caller, route: &str) -> Result<(), Problem> {
    super::auth::require_admin(state, caller, route, "only admins run fleet rollouts").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_take_kubernetes_labels_only() {
        assert!(is_label_key("tier"));
        assert!(is_label_key("storefleet.dev/canary"));
        assert!(!is_label_key(""));
        assert!(!is_label_key("/x"));
        assert!(!is_label_key("a b"));
        assert!(!is_label_key("Foo.dev/x"));
        assert!(is_label_name("v1.2_b"));
        assert!(!is_label_name("-v"));
        assert!(!is_label_name(&"a".repeat(64)));
    }
}
