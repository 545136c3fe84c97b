//! Kubernetes Events on a Store, so `kubectl describe store <id>` tells the story.
//!
//! Written as core/v1 Events, not through kube's `events::Recorder` (events.k8s.io/v1): a 1.20 API
//! server refuses an events.k8s.io Event about a cluster-scoped object unless `regarding.namespace`
//! equals the Event's namespace, and with `default` there `kubectl describe` no longer finds it.
//! core/v1 Events in `default` with an empty `involvedObject.namespace` work on every version, as long
//! as they are "old style" (no `eventTime`: with one, 1.20 applies the same namespace check).
use k8s_openapi::api::core::v1::{Event, EventSource};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, Resource};

use crate::crd::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Clone)]
pub struct EventPublisher {
    events: Api<Event>,
    component: String,
    instance: String,
}

impl EventPublisher {
    pub fn new(client: Client, instance: &str) -> Self {
        Self {
            events: Api::namespaced(client, "default"),
            component: "storefleet".into(),
            instance: instance.to_owned(),
        }
    }

    pub async fn publish(
        &self,
        store: &Store,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> kube::Result<()> {
        let now = Timestamp::now();
        let name = store.meta().name.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..Default::default()
            },
            involved_object: store.object_ref(&()),
            reason: Some(reason.to_owned()),
            message: Some(note.to_owned()),
            type_: Some(match type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            action: Some(action.to_owned()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Default::default()
        };
        self.events
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
    }
}
