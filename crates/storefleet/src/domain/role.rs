//! What a user may do: `admin` sees and manages every store, every user and the whole audit log;
//! `member` only their own stores and audit entries.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DomainError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    #[default]
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// From the database column (`users.role`).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(DomainError::InvalidRole(raw.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text_and_json() {
        for role in [Role::Admin, Role::Member] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!(Role::parse("user").is_err());
        assert!(serde_json::from_str::<Role>("\"Admin\"").is_err());
    }
}
