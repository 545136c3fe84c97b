//! Domain newtypes: inputs are parsed into these at the edges, so the rest of the code only ever holds
//! valid values.
mod engine;
mod idempotency_key;
pub mod owner;
mod role;
mod store_id;
mod store_name;
mod token;
mod user_name;

pub use engine::Engine;
pub use idempotency_key::IdempotencyKey;
pub use owner::Owner;
pub use role::Role;
pub use store_id::StoreId;
pub use store_name::StoreName;
pub use token::{TokenHash, TokenId, TokenSecret, UserId};
pub use user_name::UserName;

/// Why a value was refused; the message is shown to API clients as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("`{0}` is not a store id (expected `store-` and 6 lowercase hex digits)")]
    InvalidStoreId(String),
    #[error("the store name must not be empty")]
    EmptyName,
    #[error("the store name is {0} characters long; at most {max} are allowed", max = StoreName::MAX_CHARS)]
    NameTooLong(usize),
    #[error("the store name must not contain control characters or bidirectional overrides")]
    NameHasControlCharacters,
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("invalid owner: {0}")]
    InvalidOwner(&'static str),
    #[error("a user name is 1 to 64 ASCII letters, digits or `.-_@`")]
    InvalidUserName,
    #[error(
        "`{0}` is reserved for the control plane's own audit entries; choose another user name"
    )]
    ReservedUserName(String),
    #[error("`{0}` is not a role (expected `admin` or `member`)")]
    InvalidRole(String),
    #[error("`{0}` is not a user id (expected `u-` and 16 lowercase hex digits)")]
    InvalidUserId(String),
    #[error("`{0}` is not a token id (expected `t-` and 16 lowercase hex digits)")]
    InvalidTokenId(String),
}
