//! `GET /me`: who the caller is and how much of the quota is used (the dashboard's "3 of 5 stores").
use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::problem::{Problem, ProblemBody};
use crate::domain::Owner;
use crate::stores::Caller;

/// What a caller may do. Only the admin token exists for now; users with their own tokens and quotas
/// come later, and answer `user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn of(owner: &Owner) -> Self {
        if *owner == Owner::admin() {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// The caller and their quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[schema(example = "admin")]
    pub user: String,
    pub role: Role,
    /// Stores that may exist at once (the quota).
    #[schema(example = 5)]
    pub max_stores: u32,
    /// Stores that count against the quota now (including ones being deleted).
    #[schema(example = 3)]
    pub stores_used: u32,
}

/// Who am I, and how much of my quota is used?
#[utoipa::path(
    get, path = "/me", tag = "session",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Me>, Problem> {
    Ok(Json(describe(&state, &caller).await?))
}

pub async fn describe(state: &AppState, caller: &Caller) -> Result<Me, Problem> {
    let role = Role::of(&caller.owner);
    // The quota counts every store of this control plane, as `POST /stores` does.
    let stores = state.stores.list().await?;
    let used = stores
        .iter()
        .filter(|s| role == Role::Admin || s.owner == caller.owner.as_str())
        .count();
    Ok(Me {
        user: caller.owner.to_string(),
        role,
        max_stores: state.stores.max_stores(),
        stores_used: u32::try_from(used).unwrap_or(u32::MAX),
    })
}

/// May this caller see (and reveal the credentials of) a store of `owner`?
pub fn may_see(caller: &Caller, owner: &str) -> bool {
    Role::of(&caller.owner) == Role::Admin || caller.owner.as_str() == owner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_sees_all_users_their_own() {
        let admin = Caller {
            owner: Owner::admin(),
            remote_addr: None,
        };
        let jane = Caller {
            owner: Owner::parse("jane").unwrap(),
            remote_addr: None,
        };
        assert!(may_see(&admin, "jane"));
        assert!(may_see(&jane, "jane"));
        assert!(!may_see(&jane, "admin"));
        assert_eq!(
            serde_json::to_value(Role::of(&admin.owner)).unwrap(),
            "admin"
        );
        assert_eq!(serde_json::to_value(Role::of(&jane.owner)).unwrap(), "user");
    }
}
