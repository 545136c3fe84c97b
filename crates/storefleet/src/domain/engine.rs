//! The shop software a store runs. Only WooCommerce for now; the enum is where others would go.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Woocommerce,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Woocommerce => "woocommerce",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_engines_only() {
        assert_eq!(
            serde_json::from_str::<Engine>("\"woocommerce\"").unwrap(),
            Engine::Woocommerce
        );
        assert!(serde_json::from_str::<Engine>("\"medusa\"").is_err());
        assert!(serde_json::from_str::<Engine>("\"WooCommerce\"").is_err());
    }
}
