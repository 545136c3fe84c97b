//! Prometheus metrics. Minimal for now: stores by phase, counted from the controller's cache at scrape
//! time (so the numbers cannot drift from what the controller sees).
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::crd::{Phase, Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

pub struct Metrics {
    registry: Registry,
    stores: Family<PhaseLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("storefleet");
        let stores = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "stores",
            "Stores of this control plane instance, by phase",
            stores.clone(),
        );
        Self { registry, stores }
    }
}

impl Metrics {
    pub fn render<'a>(&self, stores: impl Iterator<Item = &'a Store>) -> String {
        let mut counts = [0i64; Phase::ALL.len()];
        for store in stores {
            let phase = if store.is_deleting() {
                Phase::Deleting
            } else {
                store.phase().unwrap_or(Phase::Provisioning)
            };
            counts[Phase::ALL
                .iter()
                .position(|p| *p == phase)
                .expect("every phase is listed")] += 1;
        }
        for (phase, count) in Phase::ALL.iter().zip(counts) {
            self.stores
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(count);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{StoreSpec, StoreStatus};
    use crate::domain::Engine;

    #[test]
    fn counts_stores_by_phase() {
        let mut ready = Store::new(
            "store-000001",
            StoreSpec {
                name: None,
                engine: Engine::Woocommerce,
                owner: "admin".into(),
            },
        );
        ready.status = Some(StoreStatus {
            phase: Some(Phase::Ready),
            ..Default::default()
        });
        let fresh = Store::new(
            "store-000002",
            StoreSpec {
                name: None,
                engine: Engine::Woocommerce,
                owner: "admin".into(),
            },
        );
        let text = Metrics::default().render([&ready, &fresh, &ready.clone()].into_iter());
        assert!(
            text.contains(r#"storefleet_stores{phase="Ready"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"storefleet_stores{phase="Provisioning"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"storefleet_stores{phase="Failed"} 0"#),
            "{text}"
        );
    }
}
