//! `GET /me`: who the caller is and how much of their quota is used (the dashboard's "3 of 5 stores").
use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::problem::{Problem, ProblemBody};
pub use crate::domain::Role;
use crate::stores::Caller;

/// The caller and their quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[schema(example = "u-3f2c9a1e7b2d4e51")]
    pub user_id: String,
    /// The user's name, the `owner` of their stores.
    #[schema(example = "admin")]
    pub user: String,
    pub role: Role,
    /// Stores this user may have at once (the platform's limit applies as well).
    #[schema(example = 5)]
    pub max_stores: u32,
    /// Stores of this user that count against the quota now (including ones being deleted).
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
    // Counted as `POST /stores` counts: every store of this user, deleting ones included.
    let used = state.stores.count_owned(&caller.owner).await?;
    Ok(Me {
        user_id: caller.user_id.to_string(),
        user: caller.owner.to_string(),
        role: caller.role,
        max_stores: caller.max_stores,
        stores_used: u32::try_from(used).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Owner, UserId};

    fn caller(name: &str, role: Role) -> Caller {
        Caller {
            user_id: UserId::random(),
            owner: Owner::parse(name).unwrap(),
            role,
            max_stores: 1,
            remote_addr: None,
            credential: None,
        }
    }

    #[test]
    fn admin_sees_all_members_their_own() {
        let admin = caller("admin", Role::Admin);
        let jane = caller("jane", Role::Member);
        assert!(admin.may_see("jane"));
        assert!(jane.may_see("jane"));
        assert!(!jane.may_see("admin"));
        assert!(!jane.may_see("jane2"));
        assert_eq!(serde_json::to_value(jane.role).unwrap(), "member");
    }
}
